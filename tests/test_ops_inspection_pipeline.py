# ruff: noqa: F811
"""The built-in action `cluster-inspect` in a pipeline on the local cluster, and the scheduled ops
pipeline shipped as examples/ops/inspect.yml (cron -> a beat entry -> a run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps.clusters.models import Cluster, InspectionReport
from tests.pipelines_helpers import engine, retry_locked  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ops" / "inspect.yml"

PIPELINE = """
version: "1.1"
stages:
  - stage:
      - cluster-inspect:
          alias: inspect
          params: {fail_on: critical}
  - stage:
      - echo:
          alias: after
          params: {msg: "criticals: ${{ outputs.inspect.critical }}"}
"""


def test_cluster_inspect_runs_on_local_and_stores_the_report(engine, tenant_a):
    run = engine.wait(engine.run(tenant_a, PIPELINE))
    assert run.status == "success", run.reason
    tasks = engine.tasks(run)
    inspect = tasks["inspect"]
    assert inspect.executor == "worker"
    report = InspectionReport.objects.get(pk=int(inspect.outputs["report_id"]))
    assert report.cluster == Cluster.local()
    assert inspect.outputs["cluster"] == "local"
    assert {k: inspect.outputs[k] for k in ("critical", "warning", "info", "unknown")} == {
        "critical": "0", "warning": "0", "info": "0", "unknown": "0"}
    from apps.logs.services import read_task_lines

    texts = [line.text for line in read_task_lines(inspect.pk)]
    assert f"inspected cluster local: report {report.pk}" in texts
    assert tasks["after"].status == "success"


def test_fail_on_critical_fails_the_step_and_a_foreign_cluster_is_refused(engine, tenant_a, monkeypatch):
    from apps.clusters import inspection, ops_pipeline

    finding = {"severity": "critical", "check": "node", "object": "n1", "namespace": "", "org": "",
               "message": "not ready", "link": ""}

    def broken(cluster):
        return InspectionReport.objects.create(cluster=cluster, findings=[finding], counts={"critical": 1})

    monkeypatch.setattr(ops_pipeline, "inspect_cluster", broken)
    run = engine.wait(engine.run(tenant_a, PIPELINE))
    assert run.status == "failed"
    tasks = engine.tasks(run)
    assert tasks["inspect"].status == "failed" and tasks["inspect"].outputs["critical"] == "1"
    assert "1 finding(s) at critical or worse" in run.reason or tasks["inspect"].transitions.last().reason
    assert tasks["after"].status == "skipped"
    from apps.logs.services import read_task_lines

    assert "CRITICAL node n1: not ready" in [line.text for line in read_task_lines(tasks["inspect"].pk)]

    # without fail_on the same findings only count
    src = PIPELINE.replace("params: {fail_on: critical}", "params: {cluster: local}")
    assert engine.wait(engine.run(tenant_a, src)).status == "success"

    # a cluster none of the project's workspaces uses, inspected by a developer (not ops)
    from django.contrib.auth import get_user_model

    from apps.projects import services as projects

    monkeypatch.setattr(ops_pipeline, "inspect_cluster", inspection.inspect_cluster)
    Cluster.objects.create(name="elsewhere", kind="kubernetes")
    developer = get_user_model().objects.create_user("dev-a", password="pw")
    projects.add_member(tenant_a.owner, tenant_a.project, username="dev-a", role="developer")
    src = PIPELINE.replace("params: {fail_on: critical}", "params: {cluster: elsewhere}")
    run = engine.wait(engine.run(tenant_a, src, user=developer))
    assert run.status == "failed"
    assert "no cluster 'elsewhere' that this project may inspect" in engine.tasks(run)["inspect"].transitions.last().reason
    assert not InspectionReport.objects.filter(cluster__name="elsewhere").exists()


def test_the_shipped_ops_pipeline_is_scheduled_and_runs(engine, tenant_a):
    from django_celery_beat.models import PeriodicTask

    from apps.pipelines import schedules, services, triggers

    definition = retry_locked(services.save_definition, tenant_a.owner, tenant_a.app, source=EXAMPLE.read_text(),
                              path="examples/ops/inspect.yml")
    task = PeriodicTask.objects.get(name=schedules.cron_task_name(definition))
    assert task.task == "dice.pipelines.cron_run" and json.loads(task.args) == [definition.pk]
    assert (task.crontab.minute, task.crontab.hour) == ("0", "*")
    run = retry_locked(triggers.run_from_cron, definition.pk)
    run = engine.wait(run)
    assert run.status == "success", run.reason
    assert run.trigger == "cron"
    tasks = engine.tasks(run)
    assert tasks["inspect"].outputs["cluster"] == "local"
    assert tasks["summary"].status == "success"
