# ruff: noqa: F811
"""Pipeline steps as Kubernetes Jobs on the ktestenv control plane (kwok nodes run nothing, but
mark Job pods Succeeded): the run of a workspace bound to a Kubernetes cluster makes one Job per
step attempt, named from run, alias and attempt, with the agent beside the step (init container
restore + native sidecar) and the step container running /bin/sh; the engine sees the Jobs
succeed, a second launch makes no second Job, and cancel suspends the Job.

The context store (DICE_CONSOLE_URL) is checked here only as far as the Secret goes: kwok runs no
containers, so no pod ever restores or stores; tests/test_pipeline_context.py runs the agent's
restore and sidecar against a live console."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from apps.clusters import services as clusters
from apps.pipelines import engine as pipeline_engine
from apps.pipelines import paths, reference, steps
from apps.projects import services as projects
from scheduler.kubernetes import steps as k8s_steps
from tests.guestbook_helpers import guestbook  # noqa: F401
from tests.pipelines_helpers import engine, wait_until  # noqa: F401

from .conftest import K8sCluster

pytestmark = [pytest.mark.k8s, pytest.mark.django_db(transaction=True)]

PIPELINE = """
version: "1.1"
envs:
  GREETING: hello
stages:
  - stage:
      - custom-script:
          alias: build
          image: busybox:1.36
          commands:
            - echo "$GREETING from $DICE_APPLICATION_NAME"
            - echo "built=yes" >> $METAFILE
          resources: {cpu: 0.2, mem: 128}
  - stage:
      - custom-script:
          alias: test
          commands: ["ls ${{ dirs.build }}"]
"""


@pytest.fixture
def on_k8s(tenant_a, k8s_cluster: K8sCluster):
    cluster = clusters.register_cluster(
        tenant_a.owner, name=f"kt-{uuid.uuid4().hex[:6]}", kubeconfig=Path(k8s_cluster.kubeconfig).read_text()
    )
    dev = tenant_a.project.workspaces.get(kind="DEV")
    projects.update_workspace(tenant_a.owner, dev, cluster=cluster)
    return cluster


def _jobs(k8s_cluster: K8sCluster, run) -> dict:
    namespace = f"pipelines-{run.application.project_id}"
    found = k8s_cluster.batch.list_namespaced_job(namespace, label_selector=f"dice.io/pipeline-run={run.pk}").items
    return {job.metadata.name: job for job in found}


def test_steps_run_as_jobs_with_the_agent_beside_them(engine, tenant_a, on_k8s, k8s_cluster: K8sCluster, settings):
    settings.DICE_CONSOLE_URL = "http://dice-console.dice.svc:8000"
    run = engine.wait(engine.run(tenant_a, PIPELINE), timeout=90)
    assert run.status == "success", run.reason
    tasks = engine.tasks(run)
    assert {t.status for t in tasks.values()} == {"success"}
    assert tasks["build"].cluster == on_k8s.name

    names = {alias: paths.job_name(run.pk, alias, 1) for alias in ("build", "test")}
    jobs = _jobs(k8s_cluster, run)
    assert set(jobs) == set(names.values())
    for alias, name in names.items():
        assert tasks[alias].job_name == name
        job = jobs[name]
        assert job.metadata.namespace == f"pipelines-{tenant_a.project.pk}"
        labels = job.spec.template.metadata.labels
        assert labels["dice.io/pipeline-run"] == str(run.pk)
        assert labels["dice.io/task"] == alias and labels["dice.io/attempt"] == "1"
        assert job.status.succeeded == 1

    pod = jobs[names["build"]].spec.template.spec
    restore, sidecar = pod.init_containers
    assert restore.name == "restore" and restore.restart_policy is None
    assert restore.command[:4] == ["python3", "-m", "agent", "restore"]
    assert sidecar.name == "agent" and sidecar.restart_policy == "Always"  # a native sidecar
    assert sidecar.command[:4] == ["python3", "-m", "agent", "sidecar"]
    (step,) = pod.containers
    assert step.name == "step" and step.image == "busybox:1.36"
    # the job's log is the agent's: the driver reads the container the pods name
    from scheduler.kubernetes.jobrun import LOG_CONTAINER

    assert jobs[names["build"]].spec.template.metadata.annotations[LOG_CONTAINER] == "agent"
    pods = k8s_cluster.core.list_namespaced_pod(
        f"pipelines-{tenant_a.project.pk}", label_selector=f"batch.kubernetes.io/job-name={names['build']}").items
    assert pods and all(p.metadata.annotations[LOG_CONTAINER] == "agent" for p in pods)
    assert step.command == ["/bin/sh", "/dice/spec/run.sh"]
    env = {e.name: e.value for e in step.env}
    assert env["GREETING"] == "hello" and env["DICE_APPLICATION_NAME"] == tenant_a.app.slug
    assert step.resources.requests == {"cpu": "200m", "memory": "128Mi"}
    assert pod.restart_policy == "Never"
    # the default image, and the context volume where ${{ dirs.x }} points on the console too
    test_step = jobs[names["test"]].spec.template.spec.containers[0]
    assert test_step.image == k8s_steps.STEP_IMAGE
    assert str(paths.run_dir(run.pk) / "dirs") in {m.mount_path for m in test_step.volume_mounts}

    # the commands, the run script and the agent's source travel in the step's Secret
    import base64

    secret = k8s_cluster.core.read_namespaced_secret(f"{names['build']}-spec", f"pipelines-{tenant_a.project.pk}")
    data = {k: base64.b64decode(v).decode() for k, v in secret.data.items()}
    assert 'echo "$GREETING from $DICE_APPLICATION_NAME"' in data["script.sh"]
    assert data["run.sh"].startswith("#!/bin/sh")
    assert "agent.runner.py" in data
    assert secret.metadata.owner_references[0].name == names["build"]

    # the context store's address and the run's token: in step.json of the Secret, nowhere else
    import json

    from apps.pipelines import context_store

    token = context_store.run_token(run.pk)
    assert json.loads(data["step.json"])["context"] == {
        "url": f"http://dice-console.dice.svc:8000/api/pipeline-context/{run.pk}/", "token": token,
        "max_bytes": context_store.max_bytes()}
    assert all(token not in value for key, value in data.items() if key != "step.json")
    job_text = json.dumps(k8s_cluster.batch.api_client.sanitize_for_serialization(jobs[names["build"]]))
    assert token not in job_text
    spec_volume = next(v for v in pod.volumes if v.name == "spec")
    assert {item.key for item in spec_volume.secret.items} == {"run.sh", "script.sh"}  # the step's view
    assert {m.name for m in step.volume_mounts} >= {"spec", "step", "context"}
    assert "agent-spec" in {m.name for m in restore.volume_mounts} | {m.name for m in sidecar.volume_mounts}

    # launching the same attempt again finds the Job: no second one
    task = tasks["build"]
    pipeline = reference.pipeline_of(run)
    action = pipeline.action("build")
    ctx, masker = reference.context_for(run, pipeline)
    spec = steps.step_spec(task, run, action, pipeline, ctx, masker, {}, None)
    uid = jobs[names["build"]].metadata.uid
    status = steps.launch(steps.run_executor(run), run, task, spec, action)
    assert status.state == "succeeded"
    again = _jobs(k8s_cluster, run)
    assert set(again) == set(names.values()) and again[names["build"]].metadata.uid == uid
    pipeline_engine.dispatch(run.pk)
    assert set(_jobs(k8s_cluster, run)) == set(names.values())


def test_cancel_suspends_the_job(engine, tenant_a, on_k8s, k8s_cluster: K8sCluster):
    src = """
version: "1.1"
stages:
  - stage:
      - custom-script:
          alias: big
          commands: ["sleep 600"]
          resources: {cpu: 100}
"""  # no kwok node has 100 CPUs: the pod stays Pending, so the step stays running
    run = engine.run(tenant_a, src)
    name = paths.job_name(run.pk, "big", 1)
    wait_until(lambda: name in _jobs(k8s_cluster, run), 60, "the step's Job")
    run.refresh_from_db()
    assert run.status == "running"
    assert pipeline_engine.cancel_run(run, "stop it")
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert engine.tasks(run)["big"].status == "cancelled"
    job = _jobs(k8s_cluster, run)[name]
    assert job.spec.suspend is True
    assert job.metadata.annotations["dice.io/cancelled"] == "true"


def test_cluster_inspect_on_the_bound_cluster(engine, tenant_a, on_k8s):
    src = """
version: "1.1"
stages:
  - stage:
      - cluster-inspect:
          alias: inspect
"""
    run = engine.wait(engine.run(tenant_a, src), timeout=60)
    assert run.status == "success", run.reason
    task = engine.tasks(run)["inspect"]
    assert task.outputs["cluster"] == on_k8s.name
    from apps.clusters.models import InspectionReport

    report = InspectionReport.objects.get(pk=int(task.outputs["report_id"]))
    assert report.cluster == on_k8s and report.error == ""


def test_the_guestbook_pipeline_runs_its_steps_as_jobs(engine, guestbook, on_k8s, k8s_cluster: K8sCluster, settings):
    """examples/guestbook/pipeline.yml with DEV bound to the ktestenv cluster: checkout and test
    become Jobs in the git and the default image, with the commands the console would run. kwok
    runs no container, so the checkout uploads no directory: `release` finds no dice.yml and fails
    saying so, and `deploy` is skipped. The whole pipeline on a
    cluster that runs pods is tested on local (tests/test_pipelines_guestbook.py, and in
    Chromium: tests/browser/test_pipeline_run_page.py)."""
    import base64

    settings.DICE_CONSOLE_URL = "http://dice-console.dice.svc:8000"
    run = engine.wait(engine.run(guestbook.tenant, guestbook.source, params={"repo": str(guestbook.repo)}),
                      timeout=120)
    tasks = engine.tasks(run)
    assert tasks["checkout"].status == tasks["test"].status == "success"
    assert tasks["checkout"].cluster == tasks["test"].cluster == on_k8s.name
    assert tasks["release"].status == "failed"
    assert tasks["release"].reason.startswith(f"no dice.yml at {paths.action_dir(run.pk, 'checkout')}/dice.yml")
    assert tasks["deploy"].status == "skipped" and run.status == "failed"

    jobs = _jobs(k8s_cluster, run)
    names = {alias: paths.job_name(run.pk, alias, 1) for alias in ("checkout", "test")}
    assert set(jobs) == set(names.values())  # release and deploy run in the console, not as Jobs
    namespace = f"pipelines-{guestbook.tenant.project.pk}"

    def script(alias: str) -> str:
        secret = k8s_cluster.core.read_namespaced_secret(f"{names[alias]}-spec", namespace)
        return base64.b64decode(secret.data["script.sh"]).decode()

    checkout = jobs[names["checkout"]].spec.template.spec.containers[0]
    assert checkout.image == k8s_steps.GIT_IMAGE
    assert f"'--depth' '1' '--branch' 'main' '--' '{guestbook.repo}' '.'" in script("checkout")
    test = jobs[names["test"]].spec.template.spec.containers[0]
    assert test.image == "python:3.11-slim"  # the step names the image its commands need
    assert f"cd {paths.action_dir(run.pk, 'checkout')}" in script("test")
    assert "python3 -m py_compile api.py front.py resp.py" in script("test")


def test_step_pods_honour_the_dice_node_labels(engine, tenant_a, on_k8s, k8s_cluster: K8sCluster):
    from apps.clusters.models import Node
    from apps.clusters.sync import sync_cluster

    from .conftest import NODE_NAMES

    sync_cluster(on_k8s)
    node = Node.objects.get(cluster=on_k8s, name=NODE_NAMES[1])
    clusters.set_node_roles(tenant_a.owner, node, ["dice/job", "dice/workspace-dev"])
    try:
        src = 'version: "1.1"\nstages:\n  - stage:\n      - custom-script:\n          alias: only\n          commands: ["true"]\n'
        run = engine.wait(engine.run(tenant_a, src), timeout=90)
        assert run.status == "success", run.reason
        job = _jobs(k8s_cluster, run)[paths.job_name(run.pk, "only", 1)]
        assert job.spec.template.spec.node_selector == {"dice/job": "true", "dice/workspace-dev": "true"}
        pods = k8s_cluster.core.list_namespaced_pod(
            job.metadata.namespace, label_selector=f"batch.kubernetes.io/job-name={job.metadata.name}").items
        assert pods and {p.spec.node_name for p in pods} == {node.name}
    finally:
        clusters.set_node_roles(tenant_a.owner, Node.objects.get(pk=node.pk), [])
