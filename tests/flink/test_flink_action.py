# ruff: noqa: F811
"""The `flink` pipeline action (Erda's params and its bigDataConf JSON form) as a step of the
workspace's Flink data cluster, the shape the `spark` action has: the step agent runs the Flink
CLI in the tenant's sandbox, the job's states (and, when it fails, its exceptions) are the live
step log, its id and final state the step's outputs; a cancelled run or a step's timeout cancels
the job on the cluster; bad params fail the step and submit nothing."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from apps.clusters.models import Cluster
from apps.logs.services import read_task_lines
from apps.projects.models import Workspace
from scheduler.base import JobState
from scheduler.flink import FlinkExecutor
from scheduler.flink.submit import flink_job_id
from tests.flink.conftest import wait_for
from tests.pipelines_helpers import engine, retry_locked  # noqa: F401

pytestmark = [pytest.mark.flink, pytest.mark.django_db(transaction=True)]

BUILD = """
version: "1.1"
stages:
  - stage:
      - custom-script:
          alias: build
          commands: ["echo {jar} | base64 -d > count.jar"]
  - stage:
"""

COUNT = """
      - flink:
          alias: count
          {timeout}
          params:
            resource: ${{{{ dirs.build }}}}/count.jar
            class: Count
            args: [{mode}, pipe]
            {detach}
            flinkConf:
              kind: FlinkJob
              parallelism: 1
              jobManagerResource: {{cpu: 1, memory: 1024}}
"""

ERDA = """
      - flink:
          alias: erda
          params:
            bigDataConf: '{big}'
"""


def lines_of(task) -> str:
    return "\n".join(line.text for line in read_task_lines(task))


def pipeline(jar: Path, mode: str = "batch", *, big: str = "", timeout: int = 0, detach: bool = False) -> str:
    code = base64.b64encode(jar.read_bytes()).decode()
    source = BUILD.format(jar=code) + COUNT.format(mode=mode, timeout=f"timeout: {timeout}" if timeout else "",
                                                   detach="detach: true" if detach else "")
    return source + (ERDA.format(big=big) if big else "")


@pytest.fixture
def data_cluster(flink: FlinkExecutor, tenant_a):
    cluster = Cluster.objects.create(name="flink-data", kind="flink", api_server=flink.session.rest_url)
    workspace = Workspace.objects.get(project=tenant_a.project, kind="DEV")
    workspace.data_clusters.add(cluster)
    return cluster


def job_id(run, alias: str = "count") -> str:
    from apps.pipelines import paths

    task = run.tasks.get(alias=alias)
    return flink_job_id("flink-data", paths.job_namespace(run), task.job_name)


def test_flink_actions_run_as_steps_of_the_data_cluster(engine, tenant_a, data_cluster, flink, count_jar: Path):
    from apps.pipelines import paths, steps

    big = json.dumps({"resource": "${{ dirs.build }}/count.jar", "class": "Count", "args": ["batch", "erda"],
                      "flinkConf": {"kind": "FlinkSession", "parallelism": 2}})
    run = engine.wait(engine.run(tenant_a, pipeline(count_jar, big=big)), timeout=180)
    tasks = engine.tasks(run)
    assert run.status == "success", (run.reason, {a: (t.status, t.reason, lines_of(t)) for a, t in tasks.items()})
    count = lines_of(tasks["count"])
    assert "submitting to Flink cluster flink-data: flink run -p 1 -c Count" in count
    assert "a session cluster runs it as a session job" in count and "jobManagerResource: ignored" in count
    assert f"flink job {job_id(run)}: FINISHED" in count  # the states, followed live
    assert "Job has been submitted with JobID" in count  # the CLI's own output
    assert tasks["count"].outputs == {"job_id": job_id(run), "cluster": "flink-data", "state": "FINISHED"}
    assert tasks["count"].cluster == "flink-data"
    assert "flink run -p 2 -c Count" in lines_of(tasks["erda"]) and tasks["erda"].status == "success"
    # the step is the data cluster's (an agent on this machine), and the job the session cluster's
    executor = steps.task_executor(run, "flink")
    wait_for(lambda: executor.job_status(tasks["count"].job_name, paths.job_namespace(run)).state
             is JobState.SUCCEEDED, 20, "the step's agent to end")
    assert flink.rest().job(job_id(run))["state"] == "FINISHED"
    assert flink.rest().job(job_id(run))["name"] == tasks["count"].job_name


def test_a_failing_job_fails_its_step_with_the_jobs_exceptions(engine, tenant_a, data_cluster, count_jar: Path):
    run = engine.wait(engine.run(tenant_a, pipeline(count_jar, "fail")), timeout=180)
    task = engine.tasks(run)["count"]
    log = lines_of(task)
    assert run.status == "failed" and task.status == "failed", (task.reason, log[-3000:])
    assert f"flink job {job_id(run)}: FAILED" in log and f"flink job {job_id(run)}: exceptions:" in log
    exceptions = log.split("exceptions:", 1)[1]
    assert "NumberFormatException" in exceptions or "Recovery is suppressed" in exceptions, exceptions[:2000]
    assert task.outputs["state"] == "FAILED"


def test_cancelling_the_run_cancels_the_job(engine, tenant_a, data_cluster, flink, count_jar: Path):
    from apps.pipelines import services

    run = engine.run(tenant_a, pipeline(count_jar, "stream"))
    wait_for(lambda: run.tasks.get(alias="count").job_name and f"flink job {job_id(run)}: RUNNING"
             in lines_of(run.tasks.get(alias="count")), 150, "the streaming job to run")
    retry_locked(services.cancel_run, tenant_a.owner, run)
    wait_for(lambda: (flink.rest().job(job_id(run)) or {}).get("state") == "CANCELED", 30,
             "the cluster to cancel the job")
    assert engine.tasks(run)["count"].status == "cancelled"


def test_a_step_that_times_out_cancels_its_job(engine, tenant_a, data_cluster, flink, count_jar: Path):
    run = engine.wait(engine.run(tenant_a, pipeline(count_jar, "stream", timeout=60)), timeout=240)
    task = engine.tasks(run)["count"]
    log = lines_of(task)
    assert task.status == "timed-out", (task.reason, log[-2000:])
    assert "the step is stopping: cancelling the job" in log, log[-2000:]
    if "Job has been submitted" in log:  # (a client that never got so far under load submits nothing)
        assert f"flink job {job_id(run)}: cancelled" in log, log[-2000:]
        wait_for(lambda: (flink.rest().job(job_id(run)) or {}).get("state") == "CANCELED", 30,
                 "the cluster to cancel the job")
    else:
        assert flink.rest().job(job_id(run)) is None, log[-2000:]


def test_a_detached_streaming_job_ends_its_step_once_it_runs(engine, tenant_a, data_cluster, flink, count_jar: Path):
    run = engine.wait(engine.run(tenant_a, pipeline(count_jar, "stream", detach=True)), timeout=180)
    task = engine.tasks(run)["count"]
    try:
        assert run.status == "success", (task.reason, lines_of(task)[-2000:])
        assert task.outputs["state"] == "RUNNING"
        assert flink.rest().job(job_id(run))["state"] == "RUNNING"  # it goes on after its step
    finally:
        flink.rest().cancel(job_id(run))


@pytest.mark.parametrize("big, error", [
    ("{not json", "bigDataConf is not JSON"),
    (json.dumps({"class": "Count"}), "needs the param resource"),
    (json.dumps({"resource": "/etc/passwd.jar"}), "outside the job's working directory"),
    (json.dumps({"resource": "x.jar", "flinkConf": {"kind": "FlinkCluster"}}), "FlinkJob or FlinkSession"),
])
def test_bad_params_fail_the_step_and_submit_nothing(engine, tenant_a, data_cluster, flink, big, error):
    before = len(flink.rest().jobs())
    source = f"""
version: "1.1"
stages:
  - stage:
      - flink:
          alias: bad
          params:
            bigDataConf: '{big}'
"""
    run = engine.wait(engine.run(tenant_a, source), timeout=60)
    task = engine.tasks(run)["bad"]
    assert run.status == "failed" and error in task.reason, task.reason
    assert len(flink.rest().jobs()) == before


def test_without_a_flink_data_cluster_the_step_says_how_to_bind_one(engine, tenant_a):
    source = """
version: "1.1"
stages:
  - stage:
      - flink:
          alias: lonely
          params: {resource: job.jar}
"""
    run = engine.wait(engine.run(tenant_a, source), timeout=60)
    task = engine.tasks(run)["lonely"]
    assert run.status == "failed" and "has no flink data cluster" in task.reason, task.reason
    assert "--data-cluster flink-local" in task.reason
