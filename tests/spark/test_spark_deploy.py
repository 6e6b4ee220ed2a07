"""dice.yml jobs with `engine: spark` in a deployment: the services go to the workspace's main
cluster, the Spark jobs to its Spark data cluster (the session's real managed cluster, registered
by its endpoint). A job without schedule runs once per release and the deployment records its run
(state, exit code) and fails when it fails; a job with `schedule` is fired by the console's beat
task (dice.clusters.fire_engine_schedules) at its due minute, once per minute however often the
beat calls; a workspace without a Spark data cluster refuses the deployment naming the job."""

from __future__ import annotations

import io
import tarfile
import time

import pytest

from apps.deploy import deployments
from apps.deploy.models import Deployment
from apps.deploy.tasks import run_deployment
from scheduler.base import JobState
from tests import test_deployments_support as support
from tests.pipelines_helpers import close_local_executors
from tests.test_deployments_support import bind_to

from .conftest import wait_for

fake, fake_cluster = support.fake, support.fake_cluster

pytestmark = [pytest.mark.spark, pytest.mark.django_db(transaction=True)]

ETL = """
import sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
n = spark.range(int(sys.argv[1])).selectExpr("id % 4 AS k").groupBy("k").count().count()
print(f"GROUPS {n}", flush=True)
spark.stop()
sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
"""

SPEC = """
version: "2.0"
services:
  web:
    image: web:1
    ports: [8080]
jobs:
  load:
    engine: spark
    resource: etl/job.py
    args: ["{rows}"{extra}]
    properties: {{spark.sql.shuffle.partitions: 2}}
    sparkConf:
      driverResource: {{cpu: 1, memory: 512}}
      executorResource: {{cpu: 1, memory: 512, replica: 1}}
  nightly:
    engine: spark
    resource: etl/job.py
    args: ["7"]
    schedule: "0 2 * * *"
"""


def _files() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        data = ETL.encode()
        info = tarfile.TarInfo("etl/job.py")
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.fixture
def rollouts(settings, tmp_path):
    settings.DICE_DEPLOY_POLL_INTERVAL = 0.2
    settings.DICE_DEPLOY_RECHECK_INTERVAL = 1.0
    settings.DICE_DEPLOY_TIMEOUT = 240
    settings.DICE_DEPLOY_FILES = tmp_path / "deploy-files"
    settings.DICE_LOCAL_ROOT = tmp_path / "local-root"
    close_local_executors()
    yield settings
    from scheduler.local import LocalExecutor

    close_local_executors()
    sweeper = LocalExecutor(tmp_path / "local-root")
    try:
        sweeper.destroy_all()
    finally:
        sweeper.close()


@pytest.fixture
def spark_row(spark_cluster):
    from apps.clusters.models import Cluster

    return Cluster.objects.create(name="spark-test", kind="spark", all_organizations=True,
                                  api_server=spark_cluster.master.endpoint)


def _deploy(tenant, text: str) -> Deployment:
    from apps.deploy.services import create_release

    release = create_release(tenant.owner, tenant.app, spec_text=text, files=_files())
    d = deployments.deploy(tenant.owner, tenant.app, "DEV", release=release, runtime_name="main")
    run_deployment(d.pk)
    return Deployment.objects.select_related("runtime").get(pk=d.pk)


def _log(deployment: Deployment) -> list[str]:
    """The driver's output of the deployment's `load` run (to say why it failed)."""
    from apps.deploy.engines import runtime_executor
    from apps.deploy.refs import runtime_ref

    run = (deployment.progress.get("jobs") or {}).get("load", {}).get("run")
    spark = runtime_executor(deployment.runtime).engines["spark"]
    return [line.text for line in spark.job_logs(run, runtime_ref(deployment.runtime).namespace)][-30:] if run else []


def _bind(tenant, cluster: str) -> None:
    ws = tenant.project.workspaces.get(kind="DEV")
    answer = tenant.api().patch(f"/api/workspaces/{ws.pk}/", {"data_clusters": [cluster]}, format="json")
    assert answer.status_code == 200, answer.content


def test_spark_jobs_run_on_the_data_cluster_on_deploy_and_on_schedule(rollouts, tenant_a, fake_cluster, fake,
                                                                      spark_row):
    from apps.clusters.tasks import fire_engine_schedules
    from apps.deploy.engines import runtime_executor
    from apps.deploy.refs import runtime_ref

    bind_to(tenant_a, fake_cluster)
    _bind(tenant_a, "spark-test")
    first = _deploy(tenant_a, SPEC.format(rows=1000, extra=""))
    assert first.status == "healthy", (first.status, first.message, _log(first))
    # the main cluster got the service and none of the Spark jobs
    group = next(iter(fake.groups.values()))
    assert set(group.spec.services) == {"web"} and group.spec.jobs == {}
    jobs = first.progress["jobs"]
    assert jobs["load"]["state"] == "succeeded" and jobs["load"]["exit_code"] == 0, jobs
    assert jobs["nightly"]["state"] == "pending" and "no run yet" in jobs["nightly"]["message"], jobs
    run = jobs["load"]["run"]
    executor = runtime_executor(first.runtime)
    ref = runtime_ref(first.runtime)
    spark = executor.engines["spark"]
    lines = [line.text for line in spark.job_logs(run, ref.namespace)]
    assert "GROUPS 4" in lines, lines[-30:]

    # deploying the same release again does not run the job again: its run is the release's
    again = deployments.deploy(tenant_a.owner, tenant_a.app, "DEV", release=first.release, runtime_name="main")
    run_deployment(again.pk)
    again = Deployment.objects.get(pk=again.pk)
    assert again.status == "healthy" and again.progress["jobs"]["load"]["run"] == run, again.progress
    assert again.progress["jobs"]["load"]["started"] == jobs["load"]["started"]

    # the beat: nothing is due right after the deploy; with the last firing rewound past 02:00, the
    # 02:00 run is submitted once, however often the beat runs
    assert fire_engine_schedules()["spark-test"] == []
    record_path = spark.deployed._path(ref)
    from scheduler.local.state import read_json, write_json

    record = read_json(record_path)
    record["jobs"]["nightly"]["last"] = time.time() - 2 * 86400
    write_json(record_path, record)
    fired = fire_engine_schedules()["spark-test"]
    assert len(fired) == 1 and fired[0].startswith("nightly-") and fired[0].endswith("0200"), fired
    assert fire_engine_schedules()["spark-test"] == []
    wait_for(lambda: spark.job_status(fired[0], ref.namespace).state.finished, 150, "the scheduled run to end")
    assert spark.job_status(fired[0], ref.namespace).state is JobState.SUCCEEDED
    assert executor.status(ref).jobs["nightly"].name == fired[0]

    # a release whose job fails fails the deployment, naming the job and its run
    second = _deploy(tenant_a, SPEC.format(rows=10, extra=', "3"'))
    assert second.status == "failed", (second.status, second.message)
    assert second.message.startswith("job load: run load-") and "failed" in second.message, second.message


def test_without_a_spark_data_cluster_the_deployment_is_refused_naming_the_job(rollouts, tenant_a):
    from apps.clusters.models import Cluster

    bind_to(tenant_a, Cluster.objects.get(name="local"))
    ws = tenant_a.project.workspaces.get(kind="DEV")
    ws.data_clusters.clear()
    spec = SPEC.replace("  web:\n    image: web:1\n    ports: [8080]\n", "  web:\n    cmd: sleep 100\n")
    d = _deploy(tenant_a, spec.format(rows=10, extra=""))
    assert d.status == "failed" and "job 'load' has `engine: spark`" in d.message, d.message
    assert "no spark data cluster" in d.message
