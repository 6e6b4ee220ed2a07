"""The console for people, page by page: the main pages at a phone's width (390 px: the navigation
collapses behind a Menu button, nothing is wider than the screen, tables scroll in their own box)
and a desktop's (1440 px: no overflow); destructive actions ask first and deletes want the name
typed; error pages and GET /logout/ keep the navigation; copy buttons copy; times carry their zone."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from apps.deploy import deployments
from apps.deploy.models import Runtime
from apps.deploy.tasks import run_deployment
from apps.pipelines import services as pipelines
from tests import test_deployments_support as support
from tests.test_deployments_support import bind_to, release_of

fake, fake_cluster, fast_rollouts = support.fake, support.fake_cluster, support.fast_rollouts

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PIPELINE = """
version: "1.1"
name: build
stages:
  - stage:
      - custom-script: {alias: compile, commands: ["echo a-rather-long-line-that-should-not-widen-the-page-at-all-------------------------------"]}
"""

# What overflows the viewport: the page's own width, and any element wider than the screen that
# is not inside a box that scrolls by itself.
OVERFLOW = """
() => {
  const width = document.documentElement.clientWidth;
  const scrolls = el => { for (let p = el.parentElement; p; p = p.parentElement) {
      const s = getComputedStyle(p); if (s.overflowX === "auto" || s.overflowX === "scroll") return true; }
    return false; };
  const wide = [];
  for (const el of document.querySelectorAll("body *")) {
    const r = el.getBoundingClientRect();
    if (r.width && r.right > width + 1 && !scrolls(el) && getComputedStyle(el).position !== "fixed") {
      wide.push(el.tagName + (el.id ? "#" + el.id : "") + (el.className && typeof el.className === "string" ? "." + el.className.split(" ")[0] : "") + " right=" + Math.round(r.right));
    }
  }
  return {scrollWidth: document.documentElement.scrollWidth, width, wide: wide.slice(0, 5)};
}
"""


def _sign_in(page, server, username: str, password: str) -> None:
    page.goto(f"{server.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/orgs/")


@pytest.fixture
def console(tenant_a, fake_cluster, fake, fast_rollouts):
    """A tenant with a healthy runtime of two releases, a pipeline run, and the pages to visit."""
    bind_to(tenant_a, fake_cluster)
    first = release_of(tenant_a, description="the first release, with a description long enough to wrap somewhere")
    release_of(tenant_a)
    run_deployment(deployments.deploy(tenant_a.owner, tenant_a.app, "DEV", release=first).pk)
    runtime = Runtime.objects.get(application=tenant_a.app)
    run = pipelines.start_run(tenant_a.owner, tenant_a.app, source=PIPELINE)
    app, project, org = tenant_a.app, tenant_a.project, tenant_a.org
    args = [org.slug, project.slug, app.slug]
    tenant_a.runtime = runtime
    tenant_a.pages = [
        reverse("projects:organizations"), org.get_absolute_url(), project.get_absolute_url(),
        app.get_absolute_url(), reverse("deploy:releases", args=args), first.get_absolute_url(),
        reverse("deploy:runtimes", args=args), runtime.get_absolute_url(),
        reverse("pipelines:list", args=args), run.get_absolute_url(),
        reverse("deploy:all_deployments"), reverse("pipelines:all_runs"),
        reverse("clusters:clusters"), reverse("clusters:cluster", args=["local"]), reverse("clusters:resources"),
        reverse("cmdb:items"), reverse("projects:audit"), reverse("projects:tokens"),
        reverse("projects:organization_members", args=[org.slug]),
        reverse("deploy:variables", args=[*args, "DEV"]), reverse("pipelines:project_settings", args=args[:2]),
    ]
    return tenant_a


@pytest.mark.parametrize("width", [390, 1440])
def test_main_pages_fit_the_screen(live_server, page, console, width):
    page.set_viewport_size({"width": width, "height": 900})
    _sign_in(page, live_server, console.owner.username, "pw-a")
    for url in console.pages:
        response = page.goto(live_server.url + url)
        assert response.status == 200, url
        fit = page.evaluate(OVERFLOW)
        assert fit["scrollWidth"] <= fit["width"], (url, fit)
        assert not fit["wide"], (url, fit)
        text = page.inner_text("main")
        assert not re.search(r"\bNone\b", text), (url, text[max(0, text.find("None") - 80):text.find("None") + 20])
        crumbs = page.locator("nav[aria-label=breadcrumb]")
        if url != reverse("projects:organizations"):
            assert crumbs.count() == 1, f"{url} has no breadcrumbs"
    # The navigation: collapsed behind the Menu button on a phone, a row on a desktop.
    menu = page.locator("[data-nav-toggle]")
    if width == 390:
        assert menu.is_visible() and not page.locator("#main-nav").is_visible()
        menu.click()
        assert page.locator("#main-nav a:has-text('Deployments')").is_visible()
        page.click("#main-nav summary")  # the user menu is on the screen
        box = page.locator("#main-nav button:has-text('Sign out')").bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width
    else:
        assert not menu.is_visible()
        for name in ("Deployments", "Pipelines", "Clusters"):
            assert page.locator(f"#main-nav a:has-text('{name}')").is_visible()


def test_destructive_actions_ask_and_deletes_want_the_name(live_server, page, console):
    _sign_in(page, live_server, console.owner.username, "pw-a")
    runtime = console.runtime
    page.goto(live_server.url + runtime.get_absolute_url())

    # Stop: dismissing the question changes nothing.
    questions = []
    page.once("dialog", lambda d: (questions.append(d.message), d.dismiss()))
    page.click("button:has-text('Stop')")
    page.wait_for_timeout(300)
    assert questions and questions[0].startswith("Stop every service")
    assert all(c[0] != "scale" or c[3] != 0 for c in support.FAKE.calls)  # nothing stopped
    assert page.locator(".flash").count() == 0

    # Restart and roll back ask too; accepted, they act.
    for button, asks in (("#service-web button:has-text('Restart')", "Restart every instance of web?"),
                         ("button:has-text('Roll back to v')", "Roll DEV/main back to v")):
        if page.locator(button).count() == 0:
            continue
        questions.clear()
        page.once("dialog", lambda d: (questions.append(d.message), d.accept()))
        with page.expect_navigation():
            page.locator(button).first.click()
        assert questions and questions[0].startswith(asks), questions
    assert any(c[0] == "restart" for c in support.FAKE.calls)

    # Deleting the runtime: the button stays disabled until the name is typed; the server checks too.
    page.goto(live_server.url + reverse("deploy:runtime_delete", args=[
        console.org.slug, console.project.slug, console.app.slug, "DEV", runtime.name]))
    page.fill("#confirm-name", "mai")
    assert page.locator("button:has-text('Delete')").is_disabled()
    page.fill("#confirm-name", runtime.name)
    assert page.locator("button:has-text('Delete')").is_enabled()
    page.click("button:has-text('Delete')")
    page.wait_for_url(live_server.url + console.app.get_absolute_url())
    assert not Runtime.objects.filter(pk=runtime.pk).exists()

    # An application: its slug typed, or nothing happens (the server answers 422 without JavaScript's help).
    delete_app = reverse("projects:application_delete", args=[console.org.slug, console.project.slug, console.app.slug])
    page.goto(live_server.url + delete_app)
    assert "Type" in page.inner_text("article") and console.app.slug in page.inner_text("article")
    page.evaluate("document.querySelector('article button[type=submit]').disabled = false")
    page.fill("#confirm-name", "wrong")
    page.evaluate("document.querySelector('article button[type=submit]').disabled = false")
    page.click("article button:has-text('Delete')")
    assert "nothing was deleted" in page.inner_text("[role=alert]")
    from apps.projects.models import Application

    assert Application.objects.filter(pk=console.app.pk).exists()


def test_error_pages_and_logout_keep_the_navigation(live_server, page, console):
    _sign_in(page, live_server, console.owner.username, "pw-a")
    response = page.goto(live_server.url + "/orgs/no-such-org/")
    assert response.status == 404
    assert "Page not found" in page.inner_text("h2")
    assert page.locator("#main-nav a:has-text('Projects')").count() == 1
    response = page.goto(live_server.url + "/logout/")
    assert response.status == 200
    assert page.locator("#main-nav").count() == 1
    page.click("main button:has-text('Sign out')")
    page.wait_for_url(f"{live_server.url}/login/")
    response = page.goto(live_server.url + "/logout/")
    assert response.status == 200 and "signed out" in page.inner_text("main")


def test_times_have_a_zone_and_copy_buttons_copy(live_server, page, console):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    _sign_in(page, live_server, console.owner.username, "pw-a")
    page.goto(live_server.url + console.runtime.get_absolute_url())
    created = page.locator("#deployments time").first
    assert created.get_attribute("title").endswith(" UTC")
    assert created.inner_text().endswith("ago") or created.inner_text() == "just now"
    copy = page.locator("#service-web button:has-text('Copy')")
    copy.click()
    assert page.evaluate("navigator.clipboard.readText()") == "http://web.fake:8080"
    assert "None" not in page.inner_text("main")


def test_project_settings_configs_secrets_rules_and_webhooks(live_server, page, console):
    from apps.pipelines.models import BranchRule, ProjectConfig

    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    _sign_in(page, live_server, console.owner.username, "pw-a")
    page.goto(live_server.url + console.project.get_absolute_url())
    page.click("a:has-text('Settings')")
    page.wait_for_url(live_server.url + reverse("pipelines:project_settings", args=[console.org.slug, console.project.slug]))

    # A plain config shows; a secret is write-only.
    page.fill("#config-form input[name=key]", "REGION")
    page.fill("#config-form input[name=value]", "eu-west")
    page.click("#config-form button")
    page.fill("#config-form input[name=key]", "DB_PASSWORD")
    page.fill("#config-form input[name=value]", "hunter2-secret")
    page.check("#config-form input[name=secret]")
    page.click("#config-form button")
    assert "eu-west" in page.inner_text("#configs")
    assert "hunter2-secret" not in page.content() and "write-only" in page.inner_text("#config-DB_PASSWORD")
    assert ProjectConfig.objects.get(key="DB_PASSWORD").value != "hunter2-secret"  # encrypted at rest

    # A bad rule is refused with the reason, nothing saved; a good one is listed.
    page.fill("#rule-form input[name=pattern]", "release/[")
    page.click("#rule-form button")
    assert page.locator("[role=alert]").count() == 1 and not BranchRule.objects.exists()
    page.fill("#rule-form input[name=pattern]", "release/*")
    page.select_option("#rule-form select[name=workspace]", "STAGING")
    page.click("#rule-form button")
    assert "release/*" in page.inner_text("#branch-rules")

    # The webhook address has a copy button; the secret is made, shown once, and can be rotated.
    hook = page.locator("#webhooks code").first
    page.locator("#webhooks button:has-text('Copy')").first.click()
    assert page.evaluate("navigator.clipboard.readText()") == hook.inner_text()
    assert f"/api/webhooks/github/{console.app.pk}/" in hook.inner_text()
    page.click("button:has-text('Make a secret')")
    first = page.inner_text("#webhook-secret")
    assert len(first) >= 40
    page.once("dialog", lambda d: d.accept())
    page.click("button:has-text('Rotate the secret')")
    assert page.inner_text("#webhook-secret") != first
    page.goto(page.url)
    assert page.locator("#webhook-secret").count() == 0  # shown once


def test_pipeline_definition_editor_checks_live_and_saves(live_server, page, console):
    from apps.pipelines.models import PipelineDefinition

    _sign_in(page, live_server, console.owner.username, "pw-a")
    args = [console.org.slug, console.project.slug, console.app.slug]
    page.goto(live_server.url + reverse("pipelines:list", args=args))
    page.click("a:has-text('New pipeline')")
    source = page.locator("#definition-source")
    source.fill('version: "1.1"\nstages:\n  - stage:\n      - custom-script: {alias: a, commands: ["echo ${{ outputs.b.x }}"]}\n')
    source.press("End")
    page.wait_for_selector("#definition-check [role=alert]")
    errors = page.locator("#definition-check .errorlist li")
    assert errors.count() >= 1 and "line 4" in errors.first.inner_text()  # the reference to an unknown alias
    source.fill(PIPELINE.replace("name: build", "name: nightly") + "  - stage:\n      - custom-script: {alias: test, commands: [\"true\"]}\n")
    source.press("End")
    page.wait_for_selector("#definition-check svg.pipeline-dag")
    assert "2 tasks" in page.inner_text("#definition-check")
    page.click("#definition-form button:has-text('Save')")
    page.wait_for_selector(".flash:has-text('Saved pipeline nightly.')")
    definition = PipelineDefinition.objects.get(name="nightly")
    # Saving an invalid text is refused with the reason; the stored one is unchanged.
    page.fill("#definition-source", "version: '1.0'\n")
    page.click("#definition-form button:has-text('Save')")
    assert page.locator("text=Nothing was saved").count() == 1
    definition.refresh_from_db()
    assert "nightly" in definition.source
    page.goto(live_server.url + reverse("pipelines:definition", args=[*args, definition.pk]))
    page.once("dialog", lambda d: d.accept())
    page.click("button:has-text('Delete')")
    page.wait_for_selector(".flash:has-text('Deleted pipeline nightly.')")
    assert not PipelineDefinition.objects.filter(pk=definition.pk).exists()
