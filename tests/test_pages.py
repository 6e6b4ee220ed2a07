"""Server-rendered pages: create through forms, see errors next to fields, and isolation (404)."""

import pytest
from django.urls import reverse

from apps.projects.models import Application, Organization, Project


def _page_urls(t):
    o, p, a = t.org.slug, t.project.slug, t.app.slug
    return [
        reverse("projects:organization", args=[o]),
        reverse("projects:organization_edit", args=[o]),
        reverse("projects:organization_delete", args=[o]),
        reverse("projects:organization_members", args=[o]),
        reverse("projects:project_add", args=[o]),
        reverse("projects:project", args=[o, p]),
        reverse("projects:project_edit", args=[o, p]),
        reverse("projects:project_delete", args=[o, p]),
        reverse("projects:project_members", args=[o, p]),
        reverse("projects:workspace_edit", args=[o, p, "DEV"]),
        reverse("projects:application_add", args=[o, p]),
        reverse("projects:application", args=[o, p, a]),
        reverse("projects:application_edit", args=[o, p, a]),
        reverse("projects:application_delete", args=[o, p, a]),
        reverse("projects:application_members", args=[o, p, a]),
    ]


def test_every_object_page_is_404_for_another_organization(tenant_a, tenant_b):
    client = tenant_a.browser_client()
    for i, url in enumerate(_page_urls(tenant_b)):
        assert client.get(url).status_code == 404, url
        if i in (0, 5, 11):  # detail pages take no POST
            continue
        assert client.post(url, {"slug": "x", "name": "x", "username": "a-owner", "role": "owner"}).status_code == 404, url
    assert Organization.objects.filter(slug=tenant_b.org.slug).exists()
    assert Project.objects.filter(pk=tenant_b.project.pk).exists()


def test_own_pages_render(tenant_a):
    client = tenant_a.browser_client()
    for url in _page_urls(tenant_a):
        assert client.get(url).status_code == 200, url
    for name in ("organizations", "projects", "applications", "audit", "tokens", "permissions"):
        assert client.get(reverse(f"projects:{name}")).status_code == 200, name


def test_lists_show_only_own_organization(tenant_a, tenant_b):
    client = tenant_a.browser_client()
    for name, mine, theirs in (
        ("organizations", tenant_a.org.slug, tenant_b.org.slug),
        ("projects", tenant_a.project.slug, tenant_b.project.slug),
        ("applications", tenant_a.app.slug, tenant_b.app.slug),
    ):
        body = client.get(reverse(f"projects:{name}")).content.decode()
        assert mine in body and theirs not in body, name


def test_login_required(db):
    from django.test import Client

    response = Client().get(reverse("projects:organizations"))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_create_org_project_app_through_forms(db, settings):
    from django.contrib.auth import get_user_model
    from django.test import Client

    settings.DICE_ORG_CREATION = "anyone"  # self-service organizations
    user = get_user_model().objects.create_user("carol", password="pw")
    client = Client()
    assert client.post(reverse("login"), {"username": "carol", "password": "pw"}).status_code == 302
    r = client.post(reverse("projects:organization_add"), {"slug": "acme", "name": "ACME"})
    assert r.status_code == 302 and r["Location"] == "/orgs/acme/"
    r = client.post(reverse("projects:project_add", args=["acme"]), {"slug": "shop"})
    assert r["Location"] == "/orgs/acme/shop/"
    r = client.post(reverse("projects:application_add", args=["acme", "shop"]), {"slug": "web", "repo_url": "https://git.example/web.git"})
    assert r["Location"] == "/orgs/acme/shop/web/"
    assert Application.objects.get(slug="web").project.organization.members.get().user == user
    # A duplicate gets the error next to the field, and nothing changes.
    r = client.post(reverse("projects:project_add", args=["acme"]), {"slug": "shop"})
    assert r.status_code == 200
    assert "already exists" in r.content.decode()
    assert Project.objects.filter(slug="shop").count() == 1


def test_htmx_list_request_gets_only_the_table(tenant_a):
    client = tenant_a.browser_client()
    r = client.get(reverse("projects:projects"), {"q": "a-proj"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="object-table")
    body = r.content.decode()
    assert "<html" not in body and "a-proj" in body


@pytest.mark.parametrize("role", ["guest", "developer"])
def test_members_page_refuses_adding_without_permission(tenant_a, role):
    from django.test import Client

    user = tenant_a.add_user(f"m-{role}", role)
    client = Client()
    client.force_login(user)
    r = client.post(reverse("projects:organization_members", args=[tenant_a.org.slug]),
                    {"action": "add", "username": "a-owner", "role": "guest"})
    assert r.status_code == 403


def test_members_page_adds_and_changes_roles(tenant_a):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("dave")
    client = tenant_a.browser_client()
    url = reverse("projects:project_members", args=[tenant_a.org.slug, tenant_a.project.slug])
    assert client.post(url, {"action": "add", "username": "dave", "role": "developer"}).status_code == 302
    member = tenant_a.project.members.get(user__username="dave")
    assert client.post(url, {"action": "role", "member": member.pk, "role": "lead"}).status_code == 302
    member.refresh_from_db()
    assert member.role == "lead"
    r = client.post(url, {"action": "add", "username": "nobody", "role": "guest"})
    assert "no user named" in r.content.decode()


def test_api_schema_and_docs(tenant_a):
    client = tenant_a.browser_client()
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    assert schema.json()["openapi"].startswith("3.")
    assert "/api/projects/" in schema.json()["paths"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


def test_admin_registers_every_model(db):
    from django.apps import apps
    from django.contrib import admin

    for label in ("projects", "clusters"):
        for model in apps.get_app_config(label).get_models():
            assert admin.site.is_registered(model), model


def test_guest_cannot_open_create_or_edit_forms(tenant_a):
    from django.test import Client

    guest = tenant_a.add_user("just-looking", "guest")
    client = Client()
    client.force_login(guest)
    o, p, a = tenant_a.org.slug, tenant_a.project.slug, tenant_a.app.slug
    for url in (
        reverse("projects:organization_edit", args=[o]),
        reverse("projects:project_add", args=[o]),
        reverse("projects:project_edit", args=[o, p]),
        reverse("projects:application_add", args=[o, p]),
        reverse("projects:application_edit", args=[o, p, a]),
    ):
        assert client.get(url).status_code == 403, url
        assert client.post(url, {"slug": "x", "name": "x"}).status_code == 403, url
    assert client.get(reverse("projects:project", args=[o, p])).status_code == 200
