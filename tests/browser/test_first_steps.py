"""A newcomer signs in and creates an organization, a project and an application in the browser."""

import pytest

from tests.conftest import make_org

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_sign_in_and_create_org_project_app(live_server, page, settings):
    from django.contrib.auth import get_user_model

    settings.DICE_ORG_CREATION = "anyone"  # self-service: a newcomer creates their organization
    from apps.projects.models import Application, Project

    get_user_model().objects.create_user("newcomer", password="a-long-password")
    page.goto(f"{live_server.url}/")
    assert "/login/" in page.url
    page.fill("input[name=username]", "newcomer")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    assert page.locator("[role=alert]").inner_text().startswith("Wrong username")
    page.fill("input[name=password]", "a-long-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/orgs/")

    page.click("text=Add")
    page.fill("input[name=slug]", "acme")
    page.fill("input[name=name]", "ACME Corp")
    page.click("button:has-text('Save')")
    page.wait_for_url(f"{live_server.url}/orgs/acme/")
    assert "ACME Corp" in page.inner_text("h2")

    page.click("text=New project")
    page.fill("input[name=slug]", "shop")
    page.click("button:has-text('Save')")
    page.wait_for_url(f"{live_server.url}/orgs/acme/shop/")
    # The four workspaces exist, bound to the local cluster.
    for kind in ("DEV", "TEST", "STAGING", "PROD"):
        assert page.locator(f"td:has-text('({kind})')").count() == 1

    page.click("text=New application")
    page.fill("input[name=slug]", "web")
    page.fill("input[name=repo_url]", "https://git.example/shop/web.git")
    page.click("button:has-text('Save')")
    page.wait_for_url(f"{live_server.url}/orgs/acme/shop/web/")
    assert "https://git.example/shop/web.git" in page.content()

    assert Project.objects.filter(organization__slug="acme", slug="shop").exists()
    assert Application.objects.filter(project__slug="shop", slug="web").exists()

    # A duplicate slug shows the error next to the field.
    page.goto(f"{live_server.url}/orgs/acme/projects/new/")
    page.fill("input[name=slug]", "shop")
    page.click("button:has-text('Save')")
    assert "already exists" in page.locator(".errorlist").first.inner_text()


def test_search_filters_the_table_with_htmx(live_server, page):
    from django.contrib.auth import get_user_model

    from apps.projects import services

    user = get_user_model().objects.create_user("searcher", password="a-long-password")
    org = make_org(user, "zeta")
    for slug in ("alpha", "beta", "gamma"):
        services.create_project(user, org, slug=slug)
    page.goto(f"{live_server.url}/login/?next=/projects/")
    page.fill("input[name=username]", "searcher")
    page.fill("input[name=password]", "a-long-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/projects/")
    assert page.locator("#object-table tbody tr").count() == 3
    page.fill("input[name=q]", "gam")
    page.wait_for_function("document.querySelectorAll('#object-table tbody tr').length === 1")
    assert "gamma" in page.inner_text("#object-table")
