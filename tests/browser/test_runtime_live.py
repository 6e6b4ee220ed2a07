# ruff: noqa: F811
"""The runtime page is one live document: pushed changes (a rollout ending, a scale made elsewhere)
show within a second without a reload, and a refresh never takes away what the user is doing (a
number typed in a Scale box, focus, an opened Events or History panel). On the fake cluster kind,
whose health the test chooses; the page is served over ASGI so its WebSocket is real."""

from __future__ import annotations

import threading
import time

import pytest

from apps.deploy import deployments
from apps.deploy.models import Deployment, Runtime
from apps.deploy.tasks import run_deployment
from scheduler.base import Health
from tests import test_deployments_support as support
from tests.browser.live_asgi import asgi_server  # noqa: F401
from tests.test_deployments_support import bind_to, release_of

fake, fake_cluster = support.fake, support.fake_cluster

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Records, in the page, when an element first matched a selector (ms since the epoch), and counts
# full page loads: a reload resets window.diceLoads.
WATCH = """
(() => {
  window.diceSeenAt = {};
  window.diceLoads = (window.diceLoads || 0) + 1;
  const watch = () => {
    for (const sel of (window.diceWatch || [])) {
      if (!window.diceSeenAt[sel] && document.querySelector(sel)) { window.diceSeenAt[sel] = Date.now(); }
    }
  };
  new MutationObserver(watch).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
})();
"""


@pytest.fixture
def rollouts(settings, tmp_path):
    settings.DICE_DEPLOY_POLL_INTERVAL = 0.02
    settings.DICE_DEPLOY_TIMEOUT = 60
    settings.DICE_DEPLOY_DEGRADED_GRACE = 30
    settings.DICE_DEPLOY_FILES = tmp_path / "deploy-files"
    settings.DICE_LOCAL_ROOT = tmp_path / "local-root"
    return settings


def _sign_in(page, server, tenant, next_url: str) -> None:
    page.goto(f"{server.url}/login/?next={next_url}")
    page.fill("input[name=username]", tenant.owner.username)
    page.fill("input[name=password]", "pw-" + tenant.org.slug.removesuffix("-org"))
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}{next_url}")


def _seen_at(page, selector: str) -> float:
    page.wait_for_function("sel => window.diceSeenAt[sel]", arg=selector, timeout=10_000)
    return page.evaluate("sel => window.diceSeenAt[sel]", selector) / 1000


def test_the_deployment_row_turns_healthy_without_a_reload(asgi_server, page, tenant_a, fake_cluster, fake,
                                                           rollouts):
    bind_to(tenant_a, fake_cluster)
    release = release_of(tenant_a)
    fake.health = Health.PROGRESSING
    deployment = deployments.deploy(tenant_a.owner, tenant_a.app, "DEV", release=release, runtime_name="main")
    runtime = Runtime.objects.get(pk=deployment.runtime_id)
    page.add_init_script(WATCH)
    _sign_in(page, asgi_server, tenant_a, runtime.get_absolute_url())
    row = f"#deployment-{deployment.pk}"
    assert page.get_attribute(row, "data-status") == "queued"
    assert "waiting for a worker" in page.inner_text("#rollout")
    page.evaluate("sels => { window.diceWatch = sels; }",
                  [f"{row}[data-status=deploying]", f"{row}[data-status=healthy]"])

    # The rollout runs here (as a worker would); the fake turns healthy a moment after it applied.
    threading.Timer(1.5, lambda: setattr(fake, "health", Health.HEALTHY)).start()
    run_deployment(deployment.pk)
    deployment.refresh_from_db()
    assert deployment.status == "healthy"

    seen = _seen_at(page, f"{row}[data-status=healthy]")
    lag = seen - deployment.finished.timestamp()
    print(f"\nrow turned healthy {lag * 1000:.0f} ms after the rollout ended")
    assert lag < 1.0, f"the row turned healthy {lag:.2f} s after the rollout ended"
    assert page.evaluate("sel => !!window.diceSeenAt[sel]", f"{row}[data-status=deploying]")
    assert page.locator("#rollout").count() == 0  # the progress panel went with the rollout
    assert "Healthy" in page.inner_text(row)
    assert page.inner_text(f"{row} td.finished").strip() not in ("", "—")
    assert page.evaluate("window.diceLoads") == 1  # no reload happened
    assert page.inner_text("#runtime-health") == "Healthy"


def test_a_refresh_keeps_the_typed_value_and_open_panels(asgi_server, page, tenant_a, fake_cluster, fake, rollouts):
    bind_to(tenant_a, fake_cluster)
    release = release_of(tenant_a)
    deployment = deployments.deploy(tenant_a.owner, tenant_a.app, "DEV", release=release, runtime_name="main")
    run_deployment(deployment.pk)
    runtime = Runtime.objects.get(pk=deployment.runtime_id)
    page.add_init_script(WATCH)
    _sign_in(page, asgi_server, tenant_a, runtime.get_absolute_url())
    assert page.get_attribute("#runtime-live", "data-poll-ms") == "10000"  # steady: only pushes refresh it

    # The user starts typing a new replica count, and opens the Events and History panels.
    page.click("#runtime-events summary")
    page.click(f"#transitions-{deployment.pk} summary")
    page.fill("#scale-web", "7")
    page.focus("#scale-web")

    # Someone else scales the worker: the page shows it within a second, by the push alone.
    page.evaluate("sels => { window.diceWatch = sels; }", ["#service-worker[data-ready='3/3']"])
    before = time.time()
    deployments.scale(tenant_a.owner, runtime, "worker", 3)
    seen = _seen_at(page, "#service-worker[data-ready='3/3']")
    print(f"\nscale showed {(seen - before) * 1000:.0f} ms after it was made")
    assert seen - before < 1.0, f"the scale showed {seen - before:.2f} s after it was made"

    assert page.input_value("#scale-web") == "7"
    assert page.evaluate("document.activeElement && document.activeElement.id") == "scale-web"
    assert page.get_attribute("#runtime-events", "open") is not None
    assert page.get_attribute(f"#transitions-{deployment.pk}", "open") is not None
    # A field nobody touched follows the server.
    assert page.input_value("#scale-worker") == "3"
    assert page.evaluate("window.diceLoads") == 1

    # A new deployment appears as a new row, and the open panels still stay open.
    second = deployments.deploy(tenant_a.owner, tenant_a.app, "DEV", release=release, runtime_name="main")
    page.wait_for_selector(f"#deployment-{second.pk}", timeout=5_000)
    assert page.get_attribute("#runtime-events", "open") is not None
    assert page.input_value("#scale-web") == "7"

    # Sending the typed value scales web (after the confirmation-free Scale button).
    page.click("#service-web button:has-text('Scale')")
    page.wait_for_selector(".flash:has-text('Scaled web to 7.')")
    assert Deployment.objects.filter(runtime=runtime).count() == 2
