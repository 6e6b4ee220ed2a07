"""Every tenancy endpoint gets the shared suite: CRUD, isolation, bounded queries."""

import pytest
from django.contrib.auth import get_user_model

from apps.projects import services
from apps.projects.models import AuditEvent
from tests.api_cases import ScopedAPICases, unique
from tests.conftest import make_org


class TestOrganizationAPI(ScopedAPICases):
    basename = "organization"
    update_data = {"name": "Renamed"}

    @pytest.fixture(autouse=True)
    def _self_service(self, settings):
        settings.DICE_ORG_CREATION = "anyone"  # tenants create their own organizations here

    def make(self, tenant):
        return make_org(tenant.owner, unique("org"))

    def lookup(self, obj):
        return obj.slug

    def create_data(self, tenant):
        return {"slug": unique("neworg"), "name": "New"} if tenant.owner.username.startswith("a") else None


class TestProjectAPI(ScopedAPICases):
    basename = "project"
    update_data = {"description": "changed"}

    def make(self, tenant):
        return services.create_project(tenant.owner, tenant.org, slug=unique("proj"))

    def create_data(self, tenant):
        return {"organization": tenant.org.slug, "slug": unique("p")}


class TestApplicationAPI(ScopedAPICases):
    basename = "application"
    update_data = {"repo_url": "https://git.example/changed.git"}

    def make(self, tenant):
        return services.create_application(tenant.owner, tenant.project, slug=unique("app"))

    def create_data(self, tenant):
        return {"project": tenant.project.pk, "slug": unique("a"), "repo_url": "https://git.example/x"}


class TestWorkspaceAPI(ScopedAPICases):
    basename = "workspace"
    deletable = False
    update_data = {"mem_quota": 2048}

    def make(self, tenant):
        return services.create_project(tenant.owner, tenant.org, slug=unique("wsp")).workspaces.get(kind="DEV")


class TestMemberAPI(ScopedAPICases):
    basename = "member"
    update_data = {"role": "ops"}

    def make(self, tenant):
        username = unique("user")
        get_user_model().objects.create_user(username)
        return services.add_member(tenant.owner, tenant.org, username=username, role="developer")

    def create_data(self, tenant):
        username = unique("newuser")
        get_user_model().objects.create_user(username)
        return {"organization": tenant.org.slug, "username": username, "role": "guest"}


class TestAuditEventAPI(ScopedAPICases):
    basename = "auditevent"
    updatable = False
    deletable = False

    def make(self, tenant):
        services.create_project(tenant.owner, tenant.org, slug=unique("audited"))
        return AuditEvent.objects.filter(organization=tenant.org).latest("id")


class TestApiTokenAPI(ScopedAPICases):
    basename = "token"
    updatable = False

    def make(self, tenant):
        token, _ = services.create_token(tenant.owner, name=unique("tok"))
        return token

    def create_data(self, tenant):
        return {"name": unique("cli")} if tenant.owner.username.startswith("a") else None
