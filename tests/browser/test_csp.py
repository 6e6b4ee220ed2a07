"""Item 7: every page passes the Content-Security-Policy in Chromium (no violation reported), with
its htmx requests and its WebSockets working under the policy."""

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Recorded in the page before any of its scripts run; CSP reports each blocked resource here.
WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " at " + e.sourceFile + ":" + e.lineNumber);
});
"""


def _pages(org, project, app, runtime):
    base_app = f"/orgs/{org.slug}/{project.slug}/{app.slug}"
    return [
        "/orgs/", "/projects/", "/apps/", "/audit/", "/tokens/", "/permissions/", "/orgs/new/",
        f"/orgs/{org.slug}/", f"/orgs/{org.slug}/members/", f"/orgs/{org.slug}/edit/",
        f"/orgs/{org.slug}/{project.slug}/", f"/orgs/{org.slug}/{project.slug}/workspaces/DEV/",
        f"{base_app}/", f"{base_app}/members/", f"{base_app}/releases/", f"{base_app}/releases/new/",
        f"{base_app}/runtimes/", f"{base_app}/pipelines/",
        f"{base_app}/runtimes/{runtime.workspace.kind}/{runtime.name}/",
        "/clusters/", "/clusters/local/", "/clusters/new/", "/reports/resources/", "/cmdb/", "/cmdb/reports/",
        "/api/docs/", "/admin/", "/users/",
    ]


def test_pages_produce_no_csp_violations(live_server, strict_page):
    page = strict_page
    from django.contrib.auth import get_user_model

    from apps.deploy.models import Runtime
    from apps.projects import services
    from tests.conftest import make_org

    admin = get_user_model().objects.create_superuser("csp-admin", password="a-long-password")
    org = make_org(admin, "csp")
    project = services.create_project(admin, org, slug="shop")
    app = services.create_application(admin, project, slug="web")
    ws = project.workspaces.get(kind="DEV")
    runtime = Runtime.objects.create(application=app, workspace=ws, name="main", cluster=ws.cluster)

    page.add_init_script(WATCH)
    console = []
    page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "csp-admin")
    page.fill("input[name=password]", "a-long-password")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/orgs/")
    seen = {}
    for path in _pages(org, project, app, runtime):
        response = page.goto(live_server.url + path)
        assert response.status == 200, (path, response.status)
        assert "script-src" in response.headers.get("content-security-policy", ""), path
        page.wait_for_load_state("networkidle")
        seen[path] = page.evaluate("window.__csp")
    # An htmx request under the policy: the search box swaps the table.
    page.goto(f"{live_server.url}/projects/")
    page.fill("input[name=q]", "shop")
    page.wait_for_load_state("networkidle")
    seen["htmx search"] = page.evaluate("window.__csp")
    # Swagger UI runs under the policy: the operations are listed.
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".opblock", timeout=20000)
    seen["swagger"] = page.evaluate("window.__csp")
    violations = {path: v for path, v in seen.items() if v}
    assert not violations and not console, (violations, console)
