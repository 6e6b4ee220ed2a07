"""A pipeline whose steps run as real pods on the real node: the step container (busybox) runs
the commands, the agent beside it (python:3.11-slim: init container restores, native sidecar
streams the log, collects outputs and stores) reports back; outputs reach the next step; the log
is persisted as it arrives; cancel stops a running step."""

from __future__ import annotations

import time

import pytest

from apps.logs import store
from apps.pipelines import engine as pipeline_engine
from apps.pipelines import paths, steps
from tests.pipelines_helpers import engine, wait_until  # noqa: F401

from .conftest import K8sCluster, NodeReachableConsole, bind_dev_to_node

pytestmark = [pytest.mark.k8s, pytest.mark.k8s_real, pytest.mark.django_db(transaction=True)]

PIPELINE = """
version: "1.1"
envs:
  GREETING: hello
stages:
  - stage:
      - custom-script:
          alias: build
          image: busybox:stable
          commands:
            - echo "$GREETING from $DICE_APPLICATION_NAME"
            - for i in 1 2 3; do echo "line $i"; sleep 0.3; done
            - echo "version=1.$((40+2))" >> $METAFILE
          resources: {cpu: 0.1, mem: 64}
  - stage:
      - custom-script:
          alias: use
          image: busybox:stable
          commands:
            - echo "got ${{ outputs.build.version }}"
            - test "${{ outputs.build.version }}" = 1.42
          resources: {cpu: 0.1, mem: 64}
"""


@pytest.fixture
def on_node(tenant_a, k8s_node: K8sCluster, settings):
    settings.DICE_PIPELINE_AGENT_IMAGE = "python:3.11-slim"
    cluster = bind_dev_to_node(tenant_a, k8s_node)
    return cluster


def test_steps_run_as_real_pods_and_pass_outputs(engine, tenant_a, on_node, k8s_node: K8sCluster):  # noqa: F811
    t0 = time.monotonic()
    run = engine.wait(engine.run(tenant_a, PIPELINE), timeout=240)
    elapsed = time.monotonic() - t0
    tasks = engine.tasks(run)
    assert run.status == "success", (run.reason, {a: (t.status, t.reason) for a, t in tasks.items()})
    assert tasks["build"].outputs.get("version") == "1.42"
    build_log = [line.text for line in store.read(tasks["build"].pk)]
    assert f"hello from {tenant_a.app.slug}" in build_log and "line 3" in build_log, build_log
    assert "got 1.42" in [line.text for line in store.read(tasks["use"].pk)]
    # Really on the node: the step's pod ran its containers there and exited 0.
    ns = f"pipelines-{tenant_a.project.pk}"
    pods = k8s_node.core.list_namespaced_pod(
        ns, label_selector=f"batch.kubernetes.io/job-name={paths.job_name(run.pk, 'build', 1)}").items
    assert pods and pods[0].spec.node_name == "ktestenv-node"
    step = next(c for c in pods[0].status.container_statuses if c.name == "step")
    assert step.state.terminated.exit_code == 0
    print(f"\n2-step pipeline on the real node: {elapsed:.1f}s")


def test_a_failing_step_and_cancel(engine, tenant_a, on_node, k8s_node: K8sCluster):  # noqa: F811
    failing = """
version: "1.1"
stages:
  - stage:
      - custom-script:
          alias: fails
          image: busybox:stable
          commands: ["echo going down", "exit 9"]
"""
    run = engine.wait(engine.run(tenant_a, failing), timeout=180)
    task = engine.tasks(run)["fails"]
    assert run.status == "failed" and task.status == "failed"
    assert steps.read_result(task)["exit_code"] == 9
    assert "going down" in [line.text for line in store.read(task.pk)]

    slow = """
version: "1.1"
stages:
  - stage:
      - custom-script:
          alias: slow
          image: busybox:stable
          commands: ["echo started", "sleep 600"]
"""
    run = engine.run(tenant_a, slow)
    wait_until(lambda: any(line.text == "started" for t in run.tasks.all() for line in store.read(t.pk)), 120,
               "the slow step to print (live, while it runs)")
    assert pipeline_engine.cancel_run(run, "stop it")
    run.refresh_from_db()
    assert run.status == "cancelled"
    ns = f"pipelines-{tenant_a.project.pk}"
    name = paths.job_name(run.pk, "slow", 1)

    def pod_gone():
        pods = k8s_node.core.list_namespaced_pod(ns, label_selector=f"batch.kubernetes.io/job-name={name}").items
        return all(p.metadata.deletion_timestamp or p.status.phase in ("Succeeded", "Failed") for p in pods)

    wait_until(pod_gone, 90, "the cancelled step's pod to stop")


@pytest.fixture
def served_repo(tmp_path, node_address):
    """examples/guestbook as a git repository served over HTTP (git's dumb protocol) on the
    node's address: what a pod can clone from."""
    import functools
    import subprocess
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from tests.guestbook_helpers import guestbook_repo

    bare = guestbook_repo(tmp_path)
    subprocess.run(["git", "update-server-info"], cwd=bare, check=True)
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(bare.parent))
    httpd = ThreadingHTTPServer((node_address, 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    head = subprocess.run(["git", "rev-parse", "main"], cwd=bare, capture_output=True, text=True, check=True)
    yield f"http://{node_address}:{httpd.server_address[1]}/{bare.name}", head.stdout.strip()
    httpd.shutdown()
    httpd.server_close()


def test_checkout_from_a_served_repo_then_a_step_on_its_files(engine, tenant_a, on_node, served_repo,  # noqa: F811
                                                               node_address, settings, transactional_db):
    url, head = served_repo
    console = NodeReachableConsole(node_address)
    console.server.start()
    settings.DICE_CONSOLE_URL = console.server.url
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, node_address]
    try:
        source = f"""
version: "1.1"
stages:
  - stage:
      - git-checkout:
          alias: checkout
          image: ktestenv.local/git:1
          params: {{uri: "{url}", branch: main}}
  - stage:
      - custom-script:
          alias: test
          image: python:3.11-slim
          commands:
            - cd ${{{{ dirs.checkout }}}}
            - python3 -m py_compile api.py front.py resp.py
            - echo "compiled at ${{{{ outputs.checkout.commit }}}}"
"""
        run = engine.wait(engine.run(tenant_a, source), timeout=300)
        tasks = engine.tasks(run)
        assert run.status == "success", (run.reason, {a: (t.status, t.reason) for a, t in tasks.items()},
                                         [line.text for t in tasks.values() for line in store.read(t.pk)][-30:])
        assert tasks["checkout"].outputs["commit"] == head
        assert f"compiled at {head}" in [line.text for line in store.read(tasks["test"].pk)]
    finally:
        console.server.stop()


def _why(run, tasks) -> str:
    """Each task's moves and a failed one's last log lines: what a failure in CI leaves to read."""
    from apps.logs.services import read_task_lines
    from tests.pipelines_helpers import describe

    out = [describe(run)]
    for alias, task in tasks.items():
        if task.status != "success":
            out += [f"{alias}: {line.stream} {line.text}" for line in list(read_task_lines(task))[-15:]]
    return "\n".join(out)


def test_ten_steps_on_the_real_node_and_on_local(engine, tenant_a, on_node):  # noqa: F811
    """The same 10-step chain (each step reads the previous one's output) on the real node (DEV)
    and on the local cluster (TEST): both succeed; the times are figures."""
    def previous(i: int) -> str:
        return "${{ outputs.s" + str(i - 1) + ".n }}" if i else "0"

    stages = "\n".join(f"""  - stage:
      - custom-script:
          alias: s{i}
          image: busybox:stable
          commands:
            - echo "n=$(( {previous(i)} + 1 ))" >> $METAFILE
          resources: {{cpu: 0.05, mem: 32}}""" for i in range(10))
    source = f'version: "1.1"\nstages:\n{stages}\n'
    times = {}
    for workspace in ("DEV", "TEST"):
        t0 = time.monotonic()
        run = engine.wait(engine.run(tenant_a, source, workspace=workspace), timeout=600)
        times[workspace] = time.monotonic() - t0
        tasks = engine.tasks(run)
        assert run.status == "success", (workspace, run.reason, _why(run, tasks))
        assert tasks["s9"].outputs["n"] == "10"
        assert (tasks["s0"].cluster == on_node.name) == (workspace == "DEV")
    print(f"\n10-step pipeline: real node {times['DEV']:.1f}s, local {times['TEST']:.1f}s")
