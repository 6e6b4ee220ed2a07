"""The console on the real node: a runtime deployed from dice.yml whose containers really run.
Its logs are read (the runtime logs page's raw view and API) and followed live (the /ws/logs/
follower and `dice runtime logs -f`); probes really probe (a failing one turns the rollout
Degraded with the kubelet's reason); a crash loop shows its exit code; Job and CronJob runs end
with their containers' exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid

import pytest

from apps.clusters.services import cluster_executor as executor_for
from apps.deploy import deployments
from apps.deploy.models import Deployment
from apps.deploy.refs import runtime_ref
from apps.deploy.services import create_release
from apps.deploy.tasks import run_deployment
from scheduler.base import Health, JobSpec, JobState
from tests.browser.live_asgi import asgi_server  # noqa: F401  (fixture)
from tests.logs_helpers import connect_logs, run_async

from .conftest import ROOT, K8sCluster, bind_dev_to_node, delete_runtimes_on, wait_for

pytestmark = [pytest.mark.k8s, pytest.mark.k8s_real, pytest.mark.django_db(transaction=True)]

TICKER = """
version: "2.0"
services:
  ticker:
    image: busybox:stable
    cmd: i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.5; done
    resources: {cpu: 0.05, mem: 32}
"""


@pytest.fixture
def bound(tenant_a, k8s_node: K8sCluster, settings):
    settings.DICE_DEPLOY_POLL_INTERVAL = 0.5
    settings.DICE_DEPLOY_TIMEOUT = 120
    settings.DICE_DEPLOY_DEGRADED_GRACE = 5
    cluster = bind_dev_to_node(tenant_a, k8s_node)
    yield cluster
    delete_runtimes_on(tenant_a.owner, cluster)


def _deploy(tenant, spec: str, name: str = "") -> tuple[Deployment, dict]:
    # Each test's database is fresh but the node is not: a runtime named alike would land in the
    # namespace an earlier test's runtime still leaves (its pods really stop, which takes time).
    name = name or f"rt{uuid.uuid4().hex[:6]}"
    release = create_release(tenant.owner, tenant.app, spec_text=spec)
    d = deployments.deploy(tenant.owner, tenant.app, "DEV", release=release, runtime_name=name)
    result = run_deployment(d.pk)
    d.refresh_from_db()
    return d, result


def test_logs_read_and_followed_live(tenant_a, tenant_b, bound, asgi_server, tmp_path):  # noqa: F811
    d, result = _deploy(tenant_a, TICKER)
    assert result["status"] == "healthy", d.message
    runtime = d.runtime

    # Read: the API's last lines and the page's raw download, from the kubelet through the API server.
    def ticks():
        body = tenant_a.api().get(f"/api/logs/runtimes/{runtime.pk}/ticker/", {"tail": 5}).json()
        return body["lines"] if len(body["lines"]) >= 3 else None

    lines = wait_for(ticks, 30, "ticker lines")
    assert all(line[3].startswith("tick ") and line[4].startswith("ticker-") for line in lines)
    raw = tenant_a.browser_client().get(f"/logs/runtimes/{runtime.pk}/ticker/raw/")
    assert raw.status_code == 200 and b"] tick 1\n" in b"".join(raw.streaming_content)
    assert tenant_b.api().get(f"/api/logs/runtimes/{runtime.pk}/ticker/").status_code == 404

    # Followed: the page's WebSocket stream keeps delivering lines written after it subscribed.
    read_last = int(lines[-1][3].split()[1])
    target = read_last + 6

    async def follow():
        comm, _, _ = await connect_logs(tenant_a.owner)
        await comm.send_json_to({"type": "subscribe", "stream": f"runtime:{runtime.pk}:ticker", "from": {}})
        seen: list[int] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not seen or max(seen) < target):
            message = await comm.receive_json_from(timeout=20)
            if message["type"] == "lines":
                seen += [int(line[3].split()[1]) for line in message["lines"] if line[3].startswith("tick ")]
        await comm.disconnect()
        return seen

    seen = run_async(follow)
    assert seen == sorted(seen) and seen[0] == 1  # the backlog from the first line, in order, no repeats
    assert seen == list(range(1, max(seen) + 1))
    assert max(seen) >= target  # and lines written after the subscription arrived live

    # `dice runtime logs -f` against the served console (HTTP + WebSocket), as a user would run it.
    env = {**os.environ, "DICE_SERVER": asgi_server.url, "DICE_TOKEN": tenant_a.token}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dice_cli.main", "runtime", "logs", "a-org/a-proj/a-app", "--workspace", "DEV",
         "--runtime", runtime.name, "--service", "ticker", "--tail", "2", "-f"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        wait_for(lambda: len([g for g in got if "] tick " in g]) >= 6, 40, "`dice runtime logs -f` output",
                 interval=0.2)
    finally:
        proc.terminate()
        proc.wait(10)
    numbers = [int(g.split("tick ")[1]) for g in got if "] tick " in g]
    assert numbers == sorted(numbers) and numbers[-1] - numbers[0] >= 5, (got, proc.stderr.read())


def test_failing_probe_is_degraded_with_the_reason(tenant_a, bound):
    spec = """
version: "2.0"
services:
  web:
    image: python:3.11-slim
    cmd: python3 -m http.server 8080
    ports: [8080]
    health_check:
      http: {port: 8080, path: /no-such-page}
    resources: {cpu: 0.05, mem: 64}
"""
    d, result = _deploy(tenant_a, spec)
    assert result["status"] == "failed", result
    assert "probe failed" in d.message and "404" in d.message, d.message
    status = executor_for(bound).status(runtime_ref(d.runtime))
    assert status.health == Health.DEGRADED and "probe failed" in status.reason


def test_passing_probe_and_liveness_restart(tenant_a, bound, k8s_node: K8sCluster):
    """The same probe path that answers: healthy. Then the check starts failing (a file the
    handler looks for is removed): the liveness probe restarts the container."""
    spec = """
version: "2.0"
services:
  web:
    image: python:3.11-slim
    cmd: mkdir -p /srv/ok && echo fine > /srv/ok/index.html && python3 -m http.server 8080 --directory /srv
    ports: [8080]
    health_check:
      http: {port: 8080, path: /ok/}
    resources: {cpu: 0.05, mem: 64}
"""
    d, result = _deploy(tenant_a, spec)
    assert result["status"] == "healthy", d.message
    ns = runtime_ref(d.runtime).namespace
    pod = k8s_node.core.list_namespaced_pod(ns, label_selector="app.kubernetes.io/name=web").items or \
        k8s_node.core.list_namespaced_pod(ns).items
    pod_name = pod[0].metadata.name
    from kubernetes.stream import stream

    stream(k8s_node.core.connect_get_namespaced_pod_exec, pod_name, ns, command=["rm", "-rf", "/srv/ok"],
           stderr=True, stdout=True)
    restarted = wait_for(
        lambda: (k8s_node.core.read_namespaced_pod(pod_name, ns).status.container_statuses[0].restart_count or 0) >= 1,
        150, "the liveness probe to restart the container", interval=1)
    assert restarted
    events = k8s_node.core.list_namespaced_event(ns).items
    assert any(e.reason == "Unhealthy" and "Liveness probe failed" in e.message for e in events)


def test_crash_loop_shows_the_exit_code(tenant_a, bound):
    """The container exits 7 over and over: the runtime's live status (API) turns Degraded with
    CrashLoopBackOff and the exit code, and its last words are in the logs. (Without a health
    check the rollout itself may already have ended healthy: the container was Ready for a moment.)"""
    spec = """
version: "2.0"
services:
  crasher:
    image: busybox:stable
    cmd: echo about to fail; exit 7
    resources: {cpu: 0.05, mem: 32}
"""
    d, result = _deploy(tenant_a, spec)
    api = tenant_a.api()
    if result["status"] == "failed":  # the rollout saw the crash loop (else it saw a Ready moment)
        assert "CrashLoopBackOff" in d.message and "last exit code 7" in d.message, d.message

    seen: list[str] = []

    def crash_looping():
        # The exit code shows in the reason (CrashLoopBackOff ... last exit code 7) while the
        # kubelet backs off, or in the replica's state (exited(7)) between two restarts.
        status = api.get(f"/api/runtimes/{d.runtime.pk}/").json()["status"]
        replicas = [r for s in status["services"] for r in s["replicas"]]
        seen.append(f"{status['health']}: {status['reason']} {[(r['state'], r['restarts']) for r in replicas]}")
        restarted = any(r["restarts"] >= 1 for r in replicas)
        if restarted and "CrashLoopBackOff" in status["reason"] and "last exit code 7" in status["reason"]:
            return status
        if restarted and any(r["state"] == "exited(7)" for r in replicas):
            return status
        return None

    try:
        wait_for(crash_looping, 120, "the runtime to show the crash loop's exit code", interval=0.5)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; statuses seen: {sorted(set(seen))}") from None
    body = api.get(f"/api/logs/runtimes/{d.runtime.pk}/crasher/", {"tail": 5}).json()
    assert any(line[3] == "about to fail" for line in body["lines"])


def test_job_and_cronjob_runs_end_with_exit_codes(tenant_a, bound, k8s_node: K8sCluster):
    executor = executor_for(bound)
    ns = f"jobs-{uuid.uuid4().hex[:6]}"
    k8s_node.core.create_namespace({"metadata": {"name": ns}})
    wait_for(lambda: k8s_node.core.read_namespaced_service_account("default", ns), 60, "the default ServiceAccount")
    ok = JobSpec(name=f"ok-{uuid.uuid4().hex[:6]}", image="busybox:stable",
                 command=["sh", "-c", "echo done"], namespace=ns)
    bad = JobSpec(name=f"bad-{uuid.uuid4().hex[:6]}", image="python:3.11-slim",
                  command=["python3", "-c", "raise SystemExit(5)"], namespace=ns)
    executor.run_job(ok)
    executor.run_job(bad)
    done = executor.wait_job(ok.name, ns, timeout=120)
    failed = executor.wait_job(bad.name, ns, timeout=120)
    assert (done.state, done.exit_code) == (JobState.SUCCEEDED, 0)
    assert (failed.state, failed.exit_code) == (JobState.FAILED, 5), failed

    # A dice.yml job with a schedule is a CronJob; one run made from its template (as
    # `kubectl create job --from=cronjob/...`): the schedule itself fires at most once a minute.
    spec = """
version: "2.0"
services:
  idle:
    image: busybox:stable
    cmd: sleep 3600
    resources: {cpu: 0.05, mem: 16}
jobs:
  nightly:
    image: busybox:stable
    cmd: echo nightly run; exit 3
    schedule: "0 3 * * *"
"""
    d, result = _deploy(tenant_a, spec)
    assert result["status"] == "healthy", d.message
    rns = runtime_ref(d.runtime).namespace
    cron = k8s_node.batch.read_namespaced_cron_job("nightly", rns)
    template = cron.spec.job_template
    k8s_node.batch.create_namespaced_job(rns, {
        "metadata": {"name": "nightly-manual", "labels": template.metadata.labels,
                     "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly",
                                          "uid": cron.metadata.uid}]},
        "spec": k8s_node.api_client.sanitize_for_serialization(template.spec)})
    run = executor.wait_job("nightly-manual", rns, timeout=120)
    assert (run.state, run.exit_code) == (JobState.FAILED, 3), run
    pods = k8s_node.core.list_namespaced_pod(rns, label_selector="batch.kubernetes.io/job-name=nightly-manual").items
    assert k8s_node.core.read_namespaced_pod_log(pods[0].metadata.name, rns).strip() == "nightly run"
    k8s_node.core.delete_namespace(ns)

