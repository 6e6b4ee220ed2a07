# ruff: noqa: F811
"""The graphs follow the push channel: when a collection stores new samples, the runtime page's
sparklines and the cluster page's node usage show them without a reload (the 5-minute poll is
only the fallback). A real local runtime is measured by the collector, the page is served over
ASGI so its WebSockets are real."""

from __future__ import annotations

import time

import pytest

from apps.clusters.models import Cluster
from apps.deploy.models import Runtime
from apps.monitoring import metrics
from tests.browser.live_asgi import asgi_server  # noqa: F401
from tests.browser.test_runtime_live import WATCH, _seen_at, _sign_in
from tests.test_metrics import _deploy
from tests.test_runtime_local import local_cluster  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

IDLE = """version: "2.0"
services:
  idle:
    cmd: exec sleep 1000
    resources: {cpu: 0.1, mem: 32}
"""


def test_runtime_graphs_show_a_new_sample_without_a_reload(asgi_server, page, tenant_a, local_cluster):
    deployed = _deploy(tenant_a, IDLE)
    assert deployed["status"] == "healthy", deployed.get("message")
    runtime = Runtime.objects.get(pk=deployed["runtime"])
    assert metrics.collect_runtime(runtime)["samples"] == 2  # the replica and its service
    page.add_init_script(WATCH)
    _sign_in(page, asgi_server, tenant_a, runtime.get_absolute_url())
    graphs = "#runtime-graphs"
    assert page.get_attribute(graphs, "data-points") == "1"
    assert page.get_attribute(graphs, "data-poll-ms") == "300000"  # the fallback only
    assert page.locator(f"{graphs} svg circle").count() == 3  # one point each: CPU, memory, restarts
    # the socket is open once the page's first refresh on connect is done
    page.wait_for_function("() => performance.getEntriesByType('resource').some(e => e.name.includes('/graphs/'))",
                           timeout=10_000)

    page.evaluate("sels => { window.diceWatch = sels; }", [f"{graphs}[data-points='2']"])
    before = time.time()
    assert metrics.collect_runtime(runtime)["samples"] == 2  # as the worker's periodic task does
    seen = _seen_at(page, f"{graphs}[data-points='2']")
    print(f"\nthe new sample showed {(seen - before) * 1000:.0f} ms after the collection")
    assert seen - before < 3.0
    assert page.evaluate("window.diceLoads") == 1  # no reload
    assert "1/1 ready" in page.inner_text(graphs)
    assert page.locator(f"{graphs} svg polyline").count() == 3  # two points: lines now

    # the day window is switched in place and keeps following the pushes
    page.click(f"{graphs} a:has-text('last day')")
    page.wait_for_selector(f"{graphs} strong:has-text('last day')")
    assert "window=1d" in page.get_attribute(graphs, "data-live-url")
    page.evaluate("sels => { window.diceWatch = sels; window.diceSeenAt = {}; }", [f"{graphs}[data-points='3']"])
    metrics.collect_runtime(runtime)
    _seen_at(page, f"{graphs}[data-points='3']")
    assert page.evaluate("window.diceLoads") == 1


def test_cluster_node_usage_shows_a_new_sample_without_a_reload(asgi_server, page, tenant_a, settings, tmp_path):
    settings.DICE_LOCAL_ROOT = tmp_path / "local"
    local = Cluster.local()
    assert metrics.collect_nodes(local) == 1
    page.add_init_script(WATCH)
    _sign_in(page, asgi_server, tenant_a, local.get_absolute_url())
    usage = "#cluster-usage"
    assert page.get_attribute(usage, "data-points") == "1"
    assert page.get_attribute(usage, "data-poll-ms") == "300000"
    # the page's socket to /ws/clusters/<id>/usage/ is open (it refreshes the region on connecting)
    page.wait_for_function("() => performance.getEntriesByType('resource').some(e => e.name.includes('/usage/'))",
                           timeout=10_000)

    page.evaluate("sels => { window.diceWatch = sels; }", [f"{usage}[data-points='2']"])
    before = time.time()
    assert metrics.collect_nodes(local) == 1
    seen = _seen_at(page, f"{usage}[data-points='2']")
    print(f"\nthe new node sample showed {(seen - before) * 1000:.0f} ms after the collection")
    assert seen - before < 3.0
    assert page.evaluate("window.diceLoads") == 1
