# ruff: noqa: F811
"""In the browser, a pipeline step running as a real pod on the real node: its log streams into
the viewer while it runs (the agent sidecar in the pod reads the step's output as it is
written), then the run page cancels it and the pod stops."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest

from apps.clusters import services as clusters
from apps.pipelines import paths
from apps.projects import services as projects
from tests.browser.live_asgi import asgi_server  # noqa: F401
from tests.browser.test_pipeline_run_page import _pipelines_url, _row_status, _run_from_form, _sign_in
from tests.pipelines_helpers import engine, wait_until  # noqa: F401

from .conftest import K8sCluster

pytestmark = [pytest.mark.browser, pytest.mark.k8s, pytest.mark.k8s_real, pytest.mark.django_db(transaction=True),
              pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators")]

TICKER = """
version: "1.1"
name: ticker
stages:
  - stage:
      - custom-script:
          alias: ticker
          image: busybox:stable
          commands:
            - "i=1; while [ $i -le 600 ]; do echo tick $i; i=$((i+1)); sleep 0.2; done"
"""


def test_live_log_in_the_browser_then_cancel(engine, tenant_a, k8s_node: K8sCluster, asgi_server, page,
                                             settings):
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.DICE_PIPELINE_AGENT_IMAGE = "python:3.11-slim"
    cluster = clusters.register_cluster(
        tenant_a.owner, name=f"real-{uuid.uuid4().hex[:6]}", kubeconfig=Path(k8s_node.kubeconfig).read_text())
    projects.update_workspace(tenant_a.owner, tenant_a.project.workspaces.get(kind="DEV"), cluster=cluster)

    _sign_in(page, asgi_server, tenant_a, _pipelines_url(tenant_a.app))
    _run_from_form(page, TICKER)
    run_url = page.url
    run_id = int(re.search(r"/runs/(\d+)/$", run_url).group(1))
    page.locator("#task-ticker a").wait_for(timeout=120000)  # the log link, once the pod printed
    page.locator("#task-ticker a").click()
    page.wait_for_function("document.querySelectorAll('.log-line').length >= 3", timeout=60000)
    count = page.locator(".log-line").count()
    page.wait_for_function(f"document.querySelectorAll('.log-line').length > {count}", timeout=30000)
    texts = page.locator(".log-line .log-t").all_inner_texts()
    ticks = [int(t.split()[1]) for t in texts if t.startswith("tick ")]
    assert ticks[:3] == [1, 2, 3], texts[:5]
    assert page.locator(".log-state").inner_text().startswith("live")

    page.goto(run_url)
    assert _row_status(page, "ticker") == "Running"
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))  # the confirmation
    with page.expect_navigation():
        page.click("#run-body button:has-text('Cancel')")
    assert asked and "Cancel" in asked[0]
    assert page.locator("#run-body hgroup .status").inner_text() == "Cancelled"

    ns = f"pipelines-{tenant_a.project.pk}"
    name = paths.job_name(run_id, "ticker", 1)

    def stopped():
        pods = k8s_node.core.list_namespaced_pod(ns, label_selector=f"batch.kubernetes.io/job-name={name}").items
        return pods == [] or all(p.metadata.deletion_timestamp or p.status.phase in ("Succeeded", "Failed")
                                 for p in pods)

    wait_until(stopped, 90, "the cancelled step's pod to stop")
