# ruff: noqa: F811
"""The `flink` pipeline action (Erda's params and its bigDataConf JSON form) on the workspace's
Flink data cluster: the job's output and state in the step log, its failure the step's, bad
params a clear failure that submits nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps.clusters.models import Cluster
from apps.logs.services import read_task_lines
from apps.projects.models import Workspace
from scheduler.flink import FlinkExecutor
from tests.pipelines_helpers import engine  # noqa: F401

pytestmark = [pytest.mark.flink, pytest.mark.django_db(transaction=True)]

PIPELINE = """
version: "1.1"
stages:
  - stage:
      - custom-script:
          alias: build
          commands: ["cp {jar} ."]
  - stage:
      - flink:
          alias: count
          params:
            resource: ${{{{ dirs.build }}}}/count.jar
            class: Count
            args: [{mode}, pipe]
            flinkConf:
              kind: FlinkJob
              parallelism: 1
              jobManagerResource: {{cpu: 1, memory: 1024}}
      - flink:
          alias: erda
          params:
            bigDataConf: '{big}'
"""


def lines_of(task) -> str:
    return "\n".join(line.text for line in read_task_lines(task))


@pytest.fixture
def data_cluster(flink: FlinkExecutor, tenant_a):
    cluster = Cluster.objects.create(name="flink-data", kind="flink", api_server=flink.session.rest_url)
    workspace = Workspace.objects.get(project=tenant_a.project, kind="DEV")
    workspace.data_clusters.add(cluster)
    return cluster


def test_flink_actions_run_on_the_workspace_data_cluster(unsandboxed, engine, tenant_a, data_cluster, count_jar: Path):
    big = json.dumps({"resource": "${{ dirs.build }}/count.jar", "class": "Count", "args": ["batch", "erda"],
                      "flinkConf": {"kind": "FlinkSession", "parallelism": 2}})
    run = engine.wait(engine.run(tenant_a, PIPELINE.format(jar=count_jar, mode="batch", big=big)), timeout=150)
    tasks = engine.tasks(run)
    assert run.status == "success", (run.reason, {a: (t.status, t.reason, lines_of(t)) for a, t in tasks.items()})
    count = lines_of(tasks["count"])
    assert "submitting to Flink cluster flink-data: flink run -p 1 -c Count" in count
    assert "a session cluster runs it as a session job" in count and "jobManagerResource: ignored" in count
    assert "FINISHED" in count
    assert tasks["count"].outputs["state"] == "succeeded" and tasks["count"].outputs["cluster"] == "flink-data"
    assert "flink run -p 2 -c Count" in lines_of(tasks["erda"]) and tasks["erda"].status == "success"


def test_a_failing_flink_job_fails_its_step(unsandboxed, engine, tenant_a, data_cluster, count_jar: Path):
    big = json.dumps({"resource": "${{ dirs.build }}/count.jar", "class": "Count", "args": ["batch", "ok"]})
    run = engine.wait(engine.run(tenant_a, PIPELINE.format(jar=count_jar, mode="fail", big=big)), timeout=150)
    tasks = engine.tasks(run)
    assert run.status == "failed"
    assert tasks["count"].status == "failed" and "FAILED" in tasks["count"].reason, tasks["count"].reason


@pytest.mark.parametrize("big, error", [
    ("{not json", "bigDataConf is not JSON"),
    (json.dumps({"class": "Count"}), "needs the param resource"),
    (json.dumps({"resource": "/etc/passwd.jar"}), "outside the job's working directory"),
    (json.dumps({"resource": "x.jar", "flinkConf": {"kind": "FlinkCluster"}}), "FlinkJob or FlinkSession"),
])
def test_bad_params_fail_the_step_and_submit_nothing(unsandboxed, engine, tenant_a, data_cluster, flink, count_jar,
                                                     big, error):
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


def test_without_a_flink_data_cluster_the_step_says_so(unsandboxed, engine, tenant_a, count_jar):
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
    assert run.status == "failed" and "has no Flink data cluster" in task.reason, task.reason
