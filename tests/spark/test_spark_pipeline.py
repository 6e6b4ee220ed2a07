"""The `spark` pipeline action on the workspace's data cluster: a PySpark app left by an earlier
step runs with its driver's output in the step's log and its `action meta:` lines as outputs;
a workspace without a Spark data cluster fails the step saying how to bind one; binding goes
through the API (and refuses a cluster that is not a data engine's)."""

from __future__ import annotations

import base64
import re
import urllib.request

import pytest

from apps.logs.services import read_task_lines
from tests.pipelines_helpers import engine, retry_locked, wait_until  # noqa: F401

pytestmark = [pytest.mark.spark, pytest.mark.django_db(transaction=True)]

ETL = """
import sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
rows = spark.range(int(sys.argv[1])).selectExpr("id % 3 AS k").groupBy("k").count().orderBy("k").collect()
for row in rows:
    print(f"GROUP {row['k']} {row['count']}", flush=True)
print(f"action meta: groups={len(rows)}", flush=True)
if len(sys.argv) > 2:
    import time; time.sleep(float(sys.argv[2]))
spark.stop()
"""


def _pipeline(args: str) -> str:
    code = base64.b64encode(ETL.encode()).decode()
    return f"""
version: "1.1"
stages:
  - stage:
      - custom-script:
          alias: code
          commands: ["echo {code} | base64 -d > etl.py"]
  - stage:
      - spark:
          alias: etl
          params:
            resource: ${{{{ dirs.code }}}}/etl.py
            args: {args}
            properties: {{spark.sql.shuffle.partitions: 2}}
            sparkConf:
              driverResource: {{cpu: 1, memory: 512}}
              executorResource: {{cpu: 1, memory: 512, replica: 1}}
"""


@pytest.fixture
def spark_row(spark_cluster):
    """The session's managed cluster registered by its endpoint, as a platform-wide data cluster."""
    from apps.clusters.models import Cluster

    return Cluster.objects.create(name="spark-test", kind="spark", all_organizations=True,
                                  api_server=spark_cluster.master.endpoint)


def _bind(tenant, cluster, workspace="DEV"):
    ws = tenant.project.workspaces.get(kind=workspace)
    answer = tenant.api().patch(f"/api/workspaces/{ws.pk}/", {"data_clusters": [cluster]}, format="json")
    return answer


def test_spark_action_runs_on_the_data_cluster(engine, tenant_a, spark_row):  # noqa: F811
    from apps.pipelines import paths, steps

    assert _bind(tenant_a, "local").status_code == 400  # not a data engine's cluster
    answer = _bind(tenant_a, "spark-test")
    assert answer.status_code == 200 and answer.json()["data_clusters"] == ["spark-test"], answer.content
    run = engine.run(tenant_a, _pipeline('["999"]'))
    engine.wait(run, 150)
    tasks = engine.tasks(run)
    lines = [line.text for line in read_task_lines(tasks["etl"].pk)]
    assert run.status == "success", (run.reason, lines[-40:])
    assert [t for t in lines if t.startswith("GROUP ")] == ["GROUP 0 333", "GROUP 1 333", "GROUP 2 333"]
    assert tasks["etl"].outputs == {"groups": "3"} and tasks["etl"].cluster == "spark-test"
    # the step's job is the data cluster's (a sandboxed driver), not the run cluster's
    executor = steps.task_executor(run, "spark")
    wait_until(lambda: executor.job_status(tasks["etl"].job_name, paths.job_namespace(run)).state.value
               == "succeeded", 20, "the driver's job to end")
    # the run page shows the step's Spark application, its state and the Spark UI's page of it
    html = tenant_a.browser_client().get(run.get_absolute_url()).content.decode()
    found = re.search(r'id="engine-etl">Spark application <code>(app-[0-9-]+)</code> (\w+) · <a href="([^"]+)"', html)
    assert found, html[html.find('id="task-etl"'):][:1500]
    assert found[2] == "FINISHED" and found[3].endswith(f"/app/?appId={found[1]}"), found.groups()
    with urllib.request.urlopen(found[3], timeout=10) as answer:  # reachable: the master's page of the app
        assert found[1] in answer.read().decode()


def test_cluster_page_shows_the_spark_workers_and_resources(tenant_a, spark_row, spark_cluster):
    from django.contrib.auth import get_user_model

    from apps.clusters import services

    report = services.run_check(spark_row)
    assert report["reachable"] and report["workers"], report
    staff = get_user_model().objects.create_user("ops", password="pw", is_staff=True)
    client = tenant_a.browser_client()
    client.force_login(staff)
    from django.urls import reverse

    html = client.get(reverse("clusters:cluster", args=["spark-test"])).content.decode()
    worker = report["workers"][0]
    assert 'id="spark-workers"' in html and f"<code>{worker['id']}</code>" in html, html[:3000]
    assert f"{worker['cores_used']} / {worker['cores']}" in html and f"/ {worker['memory_mib']} MiB" in html
    assert f"memory {report['memory_used_mib']} MiB used of {report['memory_mib']} MiB" in html


def test_cancel_kills_the_application(engine, tenant_a, spark_row, spark_cluster):  # noqa: F811
    from apps.pipelines import services
    from scheduler.spark import rest

    _bind(tenant_a, "spark-test")
    run = engine.run(tenant_a, _pipeline('["30", "600"]'))

    def app_names():
        return [a.get("name") for a in rest.master_json(spark_cluster.master)["activeapps"]]

    wait_until(lambda: any(t.text.startswith("GROUP 2") for t in read_task_lines(engine.tasks(run)["etl"].pk)),
               150, "the driver to run")
    name = engine.tasks(run)["etl"].job_name  # the application is named after the step's job
    assert name in app_names(), app_names()
    retry_locked(services.cancel_run, tenant_a.owner, run)
    wait_until(lambda: name not in app_names(), 30, "the master to drop the application")


def test_no_data_cluster_fails_the_step_saying_how_to_bind_one(engine, tenant_a):  # noqa: F811
    run = engine.run(tenant_a, _pipeline('["10"]'))
    engine.wait(run, 60)
    task = engine.tasks(run)["etl"]
    assert run.status == "failed" and task.status == "failed"
    assert "has no spark data cluster" in task.reason and "--data-cluster spark-local" in task.reason
