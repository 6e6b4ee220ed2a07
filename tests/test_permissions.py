"""The permission table is what services, pages and the API enforce."""

import pytest
from django.core.exceptions import PermissionDenied

from apps.projects import permissions, scope, services
from apps.projects.choices import Role


@pytest.mark.parametrize(
    ("role", "perm", "allowed"),
    [
        (Role.OWNER, permissions.DELETE, True),
        (Role.LEAD, permissions.DELETE, False),
        (Role.LEAD, permissions.MANAGE_MEMBERS, True),
        (Role.DEVELOPER, permissions.deploy_perm("DEV"), True),
        (Role.DEVELOPER, permissions.deploy_perm("PROD"), False),
        (Role.OPS, permissions.deploy_perm("PROD"), True),
        (Role.OPS, permissions.CHANGE, False),
        (Role.GUEST, permissions.VIEW, True),
        (Role.GUEST, permissions.CHANGE, False),
    ],
)
def test_table(role, perm, allowed):
    assert permissions.role_allows(role, perm) is allowed


def test_project_role_covers_its_applications_only(tenant_a):
    other = services.create_project(tenant_a.owner, tenant_a.org, slug="other")
    other_app = services.create_application(tenant_a.owner, other, slug="x")
    dev = tenant_a.add_user("dev", Role.DEVELOPER, target=tenant_a.project)
    assert scope.has_perm(dev, permissions.CHANGE, tenant_a.app)
    assert scope.has_perm(dev, permissions.deploy_perm("DEV"), tenant_a.app)
    assert not scope.has_perm(dev, permissions.deploy_perm("PROD"), tenant_a.app)
    # Not visible at all outside the project it was given.
    assert other_app not in scope.applications_for(dev)
    assert tenant_a.app in scope.applications_for(dev)
    assert list(scope.projects_for(dev)) == [tenant_a.project]


def test_application_role_sees_only_that_application(tenant_a):
    second = services.create_application(tenant_a.owner, tenant_a.project, slug="second")
    guest = tenant_a.add_user("g", Role.GUEST, target=tenant_a.app)
    assert list(scope.applications_for(guest)) == [tenant_a.app]
    assert second not in scope.applications_for(guest)
    with pytest.raises(PermissionDenied):
        services.update_application(guest, tenant_a.app, description="nope")


def test_guest_cannot_create_projects_through_the_api(tenant_a):
    from rest_framework.test import APIClient

    guest = tenant_a.add_user("guest", Role.GUEST)
    _, key = services.create_token(guest, name="t")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = api.post("/api/projects/", {"organization": tenant_a.org.slug, "slug": "nope"}, format="json")
    assert response.status_code == 403
    assert "may not change" in response.json()["detail"]
    assert not tenant_a.org.projects.filter(slug="nope").exists()


def test_last_owner_cannot_be_removed(tenant_a):
    from django.core.exceptions import ValidationError

    owner_membership = tenant_a.org.members.get(user=tenant_a.owner)
    with pytest.raises(ValidationError, match="at least one owner"):
        services.remove_member(tenant_a.owner, owner_membership)


def test_every_state_change_is_audited(tenant_a):
    from apps.projects.models import AuditEvent

    before = AuditEvent.objects.count()
    services.update_project(tenant_a.owner, tenant_a.project, description="new words")
    event = AuditEvent.objects.latest("id")
    assert AuditEvent.objects.count() == before + 1
    assert event.action == "update"
    assert event.actor == tenant_a.owner
    assert event.before["description"] == ""
    assert event.after["description"] == "new words"


def test_tokens_are_stored_hashed(tenant_a):
    from apps.projects.models import ApiToken

    token, key = services.create_token(tenant_a.owner, name="x")
    assert key not in {t.digest for t in ApiToken.objects.all()}
    assert services.authenticate_token(key) == tenant_a.owner
    assert services.authenticate_token(key + "x") is None


def test_reserved_slugs_are_refused(tenant_a):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="reserved"):
        services.create_project(tenant_a.owner, tenant_a.org, slug="edit")


def test_new_project_gets_four_workspaces_on_local(tenant_a):
    kinds = sorted(tenant_a.project.workspaces.values_list("kind", flat=True))
    assert kinds == ["DEV", "PROD", "STAGING", "TEST"]
    assert set(tenant_a.project.workspaces.values_list("cluster__name", flat=True)) == {"local"}
