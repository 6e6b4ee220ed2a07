"""The rest of issue 22's "Done when", each at a phone's and a desktop's width: the destructive
actions not covered elsewhere ask first (revoke a token, remove a member, deploy an older release)
and a release whose deployment failed is not offered as a plain roll back; copy buttons for
tokens and clone URLs; human column labels and durations; a way back from the full-page log; the
403 page keeps the navigation; workspace quotas and binding and cluster settings are set in the
browser; the cluster page lists its runtimes; the API root lists every endpoint and the API docs
render."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.deploy import deployments
from apps.deploy.models import Deployment
from apps.deploy.tasks import run_deployment
from tests.browser.test_console_pages import OVERFLOW, _sign_in, console  # noqa: F401 (fixture)
from tests.test_deployments_support import fake, fake_cluster, fast_rollouts, release_of  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WIDTHS = [390, 1440]


def _fits(page) -> None:
    fit = page.evaluate(OVERFLOW)
    assert fit["scrollWidth"] <= fit["width"] and not fit["wide"], (page.url, fit)


def _asks(page, selector: str, starts: str, accept: bool) -> None:
    """Click `selector`; the question must start with `starts`; answer it."""
    questions = []
    page.once("dialog", lambda d: (questions.append(d.message), d.accept() if accept else d.dismiss()))
    if accept:
        with page.expect_navigation():
            page.locator(selector).first.click()
    else:
        page.locator(selector).first.click()
        page.wait_for_timeout(300)
    assert questions and questions[0].startswith(starts), questions


@pytest.mark.parametrize("width", WIDTHS)
def test_tokens_members_and_older_releases_ask_first(live_server, page, console, fake, width):  # noqa: F811
    from django.contrib.auth import get_user_model

    from apps.projects import services
    from apps.projects.choices import Role
    from apps.projects.models import ApiToken, Member

    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.set_viewport_size({"width": width, "height": 900})
    _sign_in(page, live_server, console.owner.username, "pw-a")

    # A new token is shown once with a copy button; revoking asks (dismissed: it stays).
    page.goto(live_server.url + reverse("projects:tokens"))
    page.fill("input[name=name]", "ci")
    page.click("button:has-text('Create token')")
    key = page.inner_text("#new-token")
    page.click("button:has-text('Copy token')")
    assert page.evaluate("navigator.clipboard.readText()") == key
    _fits(page)
    row = "tr:has-text('ci') button:has-text('Revoke')"
    _asks(page, row, "Revoke token ci?", accept=False)
    assert ApiToken.objects.filter(name="ci").exists()
    _asks(page, row, "Revoke token ci?", accept=True)
    assert not ApiToken.objects.filter(name="ci", user=console.owner).exists()

    # Removing a member asks; dismissed, the member stays.
    get_user_model().objects.create_user("mia")
    services.add_member(console.owner, console.org, username="mia", role=Role.DEVELOPER)
    page.goto(live_server.url + reverse("projects:organization_members", args=[console.org.slug]))
    _asks(page, "tr:has-text('mia') button:has-text('Remove')", "Remove mia", accept=False)
    assert Member.objects.filter(user__username="mia").exists()

    # A release whose deployment failed is offered as "Deploy failed vN again", with a note.
    failed = release_of(console, description="breaks")
    fake.fail_apply = "image pull failed"
    run_deployment(deployments.deploy(console.owner, console.app, "DEV", release=failed).pk)
    fake.fail_apply = ""
    newest = release_of(console, description="the fix")
    run_deployment(deployments.deploy(console.owner, console.app, "DEV", release=newest).pk)
    page.goto(live_server.url + console.runtime.get_absolute_url())
    history = page.locator("#deployments")
    assert f"Deploy failed v{failed.version} again" in history.inner_text()
    assert f"v{failed.version} never became healthy here" in history.inner_text()
    assert f"Roll back to v{failed.version}" not in history.inner_text()
    _asks(page, f"button:has-text('Deploy failed v{failed.version} again')", f"Roll DEV/main back to v{failed.version}",
          accept=False)

    # Deploying an older release says so and asks; dismissed, nothing is deployed.
    count = Deployment.objects.count()
    older = console.app.releases.order_by("version").first()
    page.goto(live_server.url + reverse("deploy:release_deploy", args=[
        console.org.slug, console.project.slug, console.app.slug, older.version]))
    assert "older than the newest release" in page.inner_text("[role=note]")
    _asks(page, "form button:has-text('Deploy')", f"Deploy v{older.version}, older", accept=False)
    assert Deployment.objects.count() == count
    _fits(page)


@pytest.mark.parametrize("width", WIDTHS)
def test_labels_durations_the_way_back_and_the_403_page(live_server, page, console, width):  # noqa: F811
    from django.contrib.auth import get_user_model

    from apps.pipelines.models import PipelineRun
    from apps.projects import services
    from apps.projects.choices import Role

    page.set_viewport_size({"width": width, "height": 900})
    _sign_in(page, live_server, console.owner.username, "pw-a")
    # Human column labels, no raw field names.
    raw = ("Actor name", "Object repr", "pipelinerun", "Org slug", "Repo url", "Api server")
    for url in (reverse("projects:audit"), reverse("clusters:clusters"), reverse("deploy:all_deployments"),
                reverse("pipelines:all_runs"), reverse("projects:applications")):
        page.goto(live_server.url + url)
        headers = " | ".join(page.locator("main th").all_inner_texts())
        assert not [r for r in raw if r in headers], (url, headers)
    # Durations on deployments and runs.
    page.goto(live_server.url + console.runtime.get_absolute_url())
    assert page.locator("#deployments th:has-text('Duration')").count() == 1
    assert page.locator("#deployments td.finished").first.inner_text().strip() not in ("", "—")
    page.goto(live_server.url + reverse("deploy:all_deployments"))
    assert page.locator("main th:has-text('Duration')").count() == 1

    # The full-page log has a way back to its run.
    run = PipelineRun.objects.get(application=console.app)
    task = run.tasks.first()
    page.goto(live_server.url + reverse("pipelines:task_log", args=[
        console.org.slug, console.project.slug, console.app.slug, task.pk]))
    back = page.locator(f"nav[aria-label=breadcrumb] a[href='{run.get_absolute_url()}']")
    assert back.count() == 1
    back.click()
    page.wait_for_url(live_server.url + run.get_absolute_url())

    # A page the user may not open: 403, with the navigation.
    get_user_model().objects.create_user("gus", password="pw-gus")
    services.add_member(console.owner, console.org, username="gus", role=Role.GUEST)
    page.goto(live_server.url + "/logout/")
    page.click("main button:has-text('Sign out')")
    _sign_in(page, live_server, "gus", "pw-gus")
    response = page.goto(live_server.url + reverse("deploy:variables", args=[
        console.org.slug, console.project.slug, console.app.slug, "PROD"]))
    assert response.status == 200 and page.locator("#variable-form").count() == 0  # may read, not change
    response = page.goto(live_server.url + reverse("projects:application_edit", args=[
        console.org.slug, console.project.slug, console.app.slug]))
    assert response.status == 403
    assert page.locator("#main-nav a:has-text('Projects')").count() == 1
    _fits(page)


@pytest.mark.parametrize("width", WIDTHS)
def test_workspace_quota_binding_cluster_settings_and_its_runtimes(live_server, page, console, width):  # noqa: F811
    from apps.clusters.models import Cluster
    from apps.projects.models import Workspace

    page.set_viewport_size({"width": width, "height": 900})
    _sign_in(page, live_server, console.owner.username, "pw-a")
    # Quotas and binding of a workspace, from the project page.
    page.goto(live_server.url + reverse("projects:workspace_edit", args=[console.org.slug, console.project.slug, "TEST"]))
    page.fill("input[name=cpu_quota]", "3.5")
    page.fill("input[name=mem_quota]", "3072")
    page.select_option("select[name=cluster]", "local")
    _fits(page)
    with page.expect_navigation():
        page.click("main button[type=submit]")
    ws = Workspace.objects.get(project=console.project, kind="TEST")
    assert float(ws.cpu_quota) == 3.5 and ws.mem_quota == 3072 and ws.cluster.name == "local"
    # A bad quota is refused with the reason; nothing changes.
    page.goto(live_server.url + reverse("projects:workspace_edit", args=[console.org.slug, console.project.slug, "TEST"]))
    page.evaluate("document.querySelector('main form').noValidate = true")
    page.fill("input[name=mem_quota]", "-1")
    page.click("main button[type=submit]")
    assert page.locator(".errorlist").count() >= 1
    assert Workspace.objects.get(pk=ws.pk).mem_quota == 3072

    # Cluster settings: domain, ingress class, overcommit ratios (staff manage the fake cluster,
    # platform-wide and open to every organization, as the tenant's workspaces are bound to it).
    console.owner.is_staff = console.owner.is_superuser = True
    console.owner.save()
    Cluster.objects.filter(name="fake").update(all_organizations=True)
    page.goto(live_server.url + reverse("clusters:cluster_edit", args=["fake"]))
    page.fill("input[name=wildcard_domain]", "apps.example.test")
    page.fill("input[name=ingress_class]", "nginx")
    ratio = page.locator("input[name$=_cpu_ratio]").first
    ratio.fill("2")
    with page.expect_navigation():
        page.click("main button[type=submit]")
    assert page.locator(".errorlist").count() == 0, page.inner_text("main")[:2000]
    cluster = Cluster.objects.get(name="fake")
    assert cluster.wildcard_domain == "apps.example.test" and cluster.ingress_class == "nginx"

    # The cluster page lists the runtimes on it.
    page.goto(live_server.url + reverse("clusters:cluster", args=["fake"]))
    link = page.locator(f"main a[href='{console.runtime.get_absolute_url()}']")
    assert link.count() >= 1
    _fits(page)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_api_root_lists_every_endpoint_and_the_docs_render(live_server, page, console, width):  # noqa: F811
    page.set_viewport_size({"width": width, "height": 900})
    _sign_in(page, live_server, console.owner.username, "pw-a")
    page.goto(live_server.url + "/api/?format=json")
    listed = page.evaluate("JSON.parse(document.body.innerText)")
    for name in ("variables", "runtimes", "deployments", "project-configs", "branch-rules", "pipelines", "tokens",
                 "workspaces", "clusters", "audit"):
        assert any(name in key or name in str(value) for key, value in listed.items()), (name, sorted(listed))
    page.goto(live_server.url + f"/api/applications/?project={console.org.slug}/{console.project.slug}&format=json")
    found = page.evaluate("JSON.parse(document.body.innerText)")
    assert [a["slug"] for a in found["results"]] == [console.app.slug]
    page.goto(live_server.url + "/api/docs/")
    # Swagger UI renders from the cached schema, which has every endpoint and token authentication.
    page.wait_for_selector(".swagger-ui .opblock-tag", timeout=30000)
    schema = page.evaluate("fetch('/api/schema/?format=json').then(r => r.json())")
    assert "/api/variables/" in schema["paths"] and "/api/variables/{id}/" in schema["paths"]
    schemes = schema["components"]["securitySchemes"]
    assert any(s.get("scheme") == "bearer" or "token" in name.lower() for name, s in schemes.items()), schemes
