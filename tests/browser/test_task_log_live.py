# ruff: noqa: F811
"""A running pipeline in the browser, with a real worker and the local cluster: the run page's
refreshes leave an opened History panel open; the task log page's heading follows the end of the
task (status, exit code, no Pause button) without a reload."""

from __future__ import annotations

import re

import pytest

from tests.browser.live_asgi import asgi_server  # noqa: F401
from tests.pipelines_helpers import engine  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True),
              pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators")]

TICKER = """
version: "1.1"
name: ticker
stages:
  - stage:
      - custom-script:
          alias: ticker
          commands:
            - "i=1; while [ $i -le 40 ]; do echo tick $i; i=$((i+1)); sleep 0.1; done; exit 3"
"""

COUNT_SWAPS = """
(() => {
  window.diceLoads = (window.diceLoads || 0) + 1;
  window.diceSwaps = 0;
  document.addEventListener("htmx:afterSwap", () => { window.diceSwaps += 1; });
})();
"""


def _sign_in(page, server, tenant, next_url: str) -> None:
    page.goto(f"{server.url}/login/?next={next_url}")
    page.fill("input[name=username]", tenant.owner.username)
    page.fill("input[name=password]", "pw-" + tenant.org.slug.removesuffix("-org"))
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}{next_url}")


def test_history_stays_open_and_the_log_heading_follows_the_end(engine, tenant_a, asgi_server, page):
    from apps.pipelines import services

    run = services.start_run(tenant_a.owner, tenant_a.app, source=TICKER)
    page.add_init_script(COUNT_SWAPS)
    _sign_in(page, asgi_server, tenant_a, run.get_absolute_url())

    # The run page refreshes while the step runs; the History panel opened by the user stays open.
    page.click("#run-history summary")
    page.wait_for_function("window.diceSwaps >= 2", timeout=20_000)
    assert page.get_attribute("#run-history", "open") is not None
    assert page.evaluate("window.diceLoads") == 1

    # The log page of the running step: heading "Running" with a Pause button, then, when the log
    # ends, the status and exit code, without a reload.
    page.locator("#task-ticker a").wait_for(timeout=20_000)
    page.locator("#task-ticker a").click()
    page.wait_for_url(re.compile(r"/pipelines/tasks/\d+/log/$"))
    loads = page.evaluate("window.diceLoads")
    heading = page.locator("#task-head h2")
    if "Running" in heading.inner_text():
        assert page.locator(".log-follow").is_visible()
    page.wait_for_selector(".log-panel[data-complete]", state="attached", timeout=30_000)
    page.wait_for_selector("#task-head[data-status=failed]", timeout=5_000)
    assert "Failed" in heading.inner_text()
    assert page.inner_text("#exit-code") == "3"
    assert not page.locator(".log-follow").is_visible()
    assert page.get_attribute("#task-head", "data-poll-ms") == "0"
    assert page.evaluate("window.diceLoads") == loads  # no reload
    assert page.locator("#task-head a:has-text('back to run')").count() == 1
