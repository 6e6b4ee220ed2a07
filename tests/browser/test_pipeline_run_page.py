# ruff: noqa: F811
"""A pipeline run in the browser: the guestbook's pipeline saved and started from the pipelines
page, its graph refreshed live (htmx) until every task succeeded, a step's log in the viewer; a
manual review approved, and a run cancelled while its log streams, from the run page."""

from __future__ import annotations

import re

import pytest

from tests.browser.live_asgi import asgi_server  # noqa: F401
from tests.guestbook_helpers import guestbook  # noqa: F401
from tests.pipelines_helpers import engine  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True),
              pytest.mark.needs_binary("redis-server", "redis-server"),
              pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators")]

# Records the graph's task states at load, after every htmx swap and after every in-place update
# of rows from a push: what the page showed on the way, not only where it ended.
RECORD_STATES = """
(() => {
  const states = () => Object.fromEntries(Array.from(document.querySelectorAll("svg.pipeline-dag g.dag-task title"))
    .map(t => t.textContent.match(/^(\\S+) \\(.*\\): (\\S+)$/).slice(1)));
  window.diceSeen = [];
  const record = kind => window.diceSeen.push({kind, states: states()});
  document.addEventListener("DOMContentLoaded", () => record("load"));
  document.addEventListener("htmx:afterSwap", () => record("swap"));
  document.addEventListener("dice:run-rows-updated", () => record("rows"));  // run.js, from a push
})();
"""
SUCCESS_FILL, SUCCESS_STROKE = "#ebfbee", "#2f9e44"  # apps/pipelines/dag.py COLOURS["success"]

REVIEW = """
version: "1.1"
name: reviewed
stages:
  - stage:
      - custom-script: {alias: build, commands: ["echo built"]}
  - stage:
      - manual-review: {alias: approval}
  - stage:
      - custom-script: {alias: ship, commands: ["echo shipped"]}
"""
TICKER = """
version: "1.1"
name: ticker
stages:
  - stage:
      - custom-script:
          alias: ticker
          commands:
            - "i=1; while [ $i -le 600 ]; do echo tick $i; i=$((i+1)); sleep 0.1; done"
"""


def _sign_in(page, server, tenant, next_url: str) -> None:
    page.goto(f"{server.url}/login/?next={next_url}")
    assert "/login/" in page.url
    page.fill("input[name=username]", tenant.owner.username)
    page.fill("input[name=password]", "pw-" + tenant.org.slug.removesuffix("-org"))  # tests.conftest.Tenant
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}{next_url}")


def _pipelines_url(app) -> str:
    from django.urls import reverse

    return reverse("pipelines:list", args=[app.project.organization.slug, app.project.slug, app.slug])


def _run_from_form(page, source: str) -> None:
    """Start a pipeline.yml pasted into the page's free Run form; lands on the run page."""
    page.click("summary:has-text('Run or save a pipeline.yml')")
    form = page.locator("details form")
    form.locator("textarea[name=source]").fill(source)
    form.locator("select[name=workspace]").select_option("DEV")
    form.locator("button", has_text=re.compile("^Run$")).click()
    page.wait_for_url(re.compile(r"/pipelines/runs/\d+/$"))


def _node_states(page) -> dict:
    titles = page.locator("svg.pipeline-dag g.dag-task title").all_text_contents()
    return dict(re.match(r"^(\S+) \(.*\): (\S+)$", t).groups() for t in titles)


def _row_status(page, alias: str) -> str:
    return page.locator(f"#task-{alias} td:nth-child(3) .status").inner_text()


def test_guestbook_pipeline_runs_live_in_the_browser(unsandboxed, engine, guestbook, asgi_server, page):
    page.add_init_script(RECORD_STATES)
    _sign_in(page, asgi_server, guestbook.tenant, _pipelines_url(guestbook.app))
    assert "No pipeline definitions yet" in page.inner_text("#definitions")

    # Save examples/guestbook/pipeline.yml as a definition, then run it from its row: the row asks
    # for the declared params (repo is required, branch defaults to main).
    page.click("summary:has-text('Run or save a pipeline.yml')")
    page.fill("textarea[name=source]", guestbook.source)
    page.fill("input[name=name]", "guestbook")
    page.click("button:has-text('Save as definition')")
    assert page.locator(".flash").inner_text() == "Saved pipeline guestbook."
    row = page.locator("#definitions tbody tr", has_text="guestbook")
    assert row.locator("input[name='param.branch']").input_value() == "main"
    assert row.locator("input[name='param.repo']").get_attribute("required") is not None
    row.locator("input[name='param.repo']").fill(str(guestbook.repo))
    row.locator("select[name=workspace]").select_option("DEV")
    row.locator("button", has_text="Run").click()
    page.wait_for_url(re.compile(r"/pipelines/runs/\d+/$"))
    run_url = page.url
    page.evaluate("window.diceSamePage = true")  # gone if anything reloads the page

    assert list(_node_states(page)) == ["checkout", "test", "release", "deploy"]
    assert page.locator("svg.pipeline-dag line").count() == 3  # checkout -> test -> release -> deploy
    page.wait_for_selector("#run-body hgroup .status-success", timeout=45000)

    seen = page.evaluate("window.diceSeen")
    assert page.evaluate("window.diceSamePage") is True and page.url == run_url, seen
    assert seen[0]["kind"] == "load" and seen[-1]["kind"] in ("swap", "rows"), seen
    assert any(s["kind"] == "rows" for s in seen), seen  # pushed rows, not only whole refreshes
    assert any("running" in s["states"].values() for s in seen), seen  # a node was seen running
    assert len({tuple(s["states"].values()) for s in seen}) >= 2, seen  # and changed in place
    assert set(seen[-1]["states"].values()) == {"success"}, seen
    for node in page.locator("svg.pipeline-dag g.dag-task").all():
        assert "status-success" in node.get_attribute("class")
        assert node.locator("rect").get_attribute("fill") == SUCCESS_FILL
        assert node.locator("rect").get_attribute("stroke") == SUCCESS_STROKE
        assert node.locator("text").nth(1).text_content().endswith("· success")
    for alias in ("checkout", "test", "release", "deploy"):
        assert _row_status(page, alias) == "Success", page.inner_text("#tasks")
    checkout_params = page.locator("#task-checkout td:nth-child(5) code").all_text_contents()
    assert f"uri={guestbook.repo}" in checkout_params and "branch=main" in checkout_params  # as given
    assert "compiled=api.py,front.py,resp.py" in page.inner_text("#task-test")
    assert re.search(r"runtime_id=\d+", page.inner_text("#task-deploy"))
    assert page.locator("[data-poll-ms=\"0\"]").count() == 1  # finished: the page stopped polling
    assert page.locator("button:has-text('Rerun')").is_visible()

    # The checkout step's log in the viewer, every line delivered over the WebSocket.
    assert page.locator("#task-test a").inner_text() == "1 line"  # its "exit code 0"
    link = page.locator("#task-checkout a")
    assert link.inner_text() == "4 lines"
    link.click()
    page.wait_for_url(re.compile(r"/pipelines/tasks/\d+/log/$"))
    page.wait_for_selector(".log-panel[data-complete='4']", state="attached")
    assert page.locator(".log-line").count() == 4
    lines = page.locator(".log-line .log-t").all_text_contents()
    assert lines[0] == f"git clone {guestbook.repo} (branch main)"
    assert re.fullmatch(r"checked out [0-9a-f]{12} guestbook", lines[2]), lines
    assert lines[-1] == "exit code 0"
    assert page.locator(".log-state").inner_text() == "complete: 4 lines"
    assert "{#" not in page.inner_text("main")  # the panel's template comment stays a comment


def test_review_approved_and_run_cancelled_from_the_run_page(engine, tenant_a, asgi_server, page):
    _sign_in(page, asgi_server, tenant_a, _pipelines_url(tenant_a.app))

    # A manual review: the Approve button appears once the review waits, and the run goes on.
    _run_from_form(page, REVIEW)
    approve = page.locator("#task-approval button:has-text('Approve')")
    approve.wait_for(timeout=20000)
    assert _node_states(page) == {"build": "success", "approval": "running", "ship": "queued"}
    with page.expect_navigation():
        approve.click()
    assert page.locator(".flash").inner_text() == "Approved approval."
    page.wait_for_selector("#run-body hgroup .status-success", timeout=20000)
    assert _node_states(page) == {"build": "success", "approval": "success", "ship": "success"}
    assert "approved by a-owner" in page.inner_text("#task-approval")
    assert page.locator("#task-approval button").count() == 0

    # A long step: its log streams into the viewer while it runs, then the run page cancels it.
    page.goto(asgi_server.url + _pipelines_url(tenant_a.app))
    _run_from_form(page, TICKER)
    run_url = page.url
    page.locator("#task-ticker a").wait_for(timeout=20000)  # the log link, once lines exist
    page.locator("#task-ticker a").click()
    page.wait_for_function("document.querySelectorAll('.log-line').length >= 3")
    count = page.locator(".log-line").count()
    page.wait_for_function(f"document.querySelectorAll('.log-line').length > {count}")  # more arrive
    assert page.locator(".log-line .log-t").first.inner_text() == "tick 1"
    assert page.locator(".log-state").inner_text().startswith("live")
    assert page.locator(".log-panel[data-complete]").count() == 0

    page.goto(run_url)
    assert _row_status(page, "ticker") == "Running"
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))  # the confirmation
    with page.expect_navigation():
        page.click("#run-body button:has-text('Cancel')")
    assert asked and asked[0].startswith("Cancel run ")
    assert page.url == run_url
    assert re.fullmatch(r"Cancelled run \d+\.", page.locator(".flash").inner_text())
    assert page.locator("#run-body hgroup .status").inner_text() == "Cancelled"
    assert _node_states(page) == {"ticker": "cancelled"}
    assert _row_status(page, "ticker") == "Cancelled"
    assert page.locator("#run-body button:has-text('Cancel')").count() == 0
    assert page.locator("[data-poll-ms=\"0\"]").count() == 1
    page.click("#task-ticker a")  # the viewer now knows the log has ended
    page.wait_for_selector(".log-panel[data-complete]", state="attached")
    assert page.locator(".log-state").inner_text().startswith("complete")


def test_a_tasks_move_shows_in_place_from_a_push_without_reload_or_polling(tenant_a, asgi_server, page):
    """No engine: the test moves the tasks itself, as the engine would. The page follows the run's
    WebSocket: the moved row changes within a second, fetched alone (?rows=), the page is not
    reloaded, and the whole body is not fetched again while the socket is open."""
    import time

    from apps.pipelines import states
    from apps.pipelines.models import PipelineRun, TaskRun

    run = PipelineRun.objects.create(application=tenant_a.app, source=REVIEW, status="running", created_by=tenant_a.owner)
    TaskRun.objects.bulk_create(TaskRun(run=run, alias=a, type="custom-script", position=i)
                                for i, a in enumerate(("build", "approval", "ship")))
    _sign_in(page, asgi_server, tenant_a, run.get_absolute_url())
    page.wait_for_function("document.getElementById('run-body').dicePushed === true")
    page.wait_for_load_state("networkidle")  # the catch-up fetch made when the socket opened
    page.evaluate("window.diceSamePage = true")  # gone if anything reloads the page
    fetched = []
    page.on("request", lambda request: fetched.append(request.url))
    assert _row_status(page, "build") == "Queued"

    states.move_task(run.tasks.get(alias="build"), "running")
    moved = time.monotonic()
    page.wait_for_function("document.querySelector('#task-build .status').textContent.trim() === 'Running'",
                           timeout=5000)
    assert time.monotonic() - moved < 2.0
    assert _node_states(page) == {"build": "running", "approval": "queued", "ship": "queued"}  # the graph too
    assert _row_status(page, "ship") == "Queued"
    states.move_task(run.tasks.get(alias="build"), "success")
    page.wait_for_function("document.querySelector('#task-build .status').textContent.trim() === 'Success'",
                           timeout=5000)
    time.sleep(3.5)  # more than two of the old 1.5 s polls
    assert page.evaluate("window.diceSamePage") is True
    assert [u for u in fetched if "?rows=" in u] and all(u.endswith("?rows=build") for u in fetched if "?rows=" in u)
    assert not [u for u in fetched if "partial=" in u], fetched  # no whole-body refresh while pushed
