"""Workspace quotas and overcommit count a Spark job's driver and executors (apps/deploy/quota.py):
each as a service's replica would count, on the ratios of the cluster that runs it (the workspace's
Spark data cluster). Over quota, the deployment is refused (400) naming the quota and the job's
fields, and nothing is created or submitted. No Spark is needed: nothing gets to run."""

from __future__ import annotations

import pytest

from apps.deploy.models import Deployment, Runtime
from tests import test_deployments_support as support
from tests.pipelines_helpers import engine  # noqa: F401 (fixture)
from tests.test_deployments_support import bind_to, release_of

fake, fake_cluster = support.fake, support.fake_cluster

SPEC = """
version: "2.0"
services:
  web:
    image: web:1
    resources: {cpu: 0.5, mem: 256}
jobs:
  load:
    engine: spark
    resource: https://files.example/etl.py
    sparkConf:
      driverResource: {cpu: 1, memory: 1024}
      executorResource: {cpu: 2, memory: 512, replica: 3}
"""


@pytest.fixture
def spark_data_cluster(tenant_a):
    from apps.clusters.models import Cluster

    cluster = Cluster.objects.create(name="spark-q", kind="spark", all_organizations=True,
                                     api_server="http://127.0.0.1:9/")  # never reached: nothing is submitted
    ws = tenant_a.project.workspaces.get(kind="DEV")
    ws.data_clusters.set([cluster])
    return cluster


def _post(tenant, release):
    return tenant.api().post("/api/deployments/", {"application": tenant.app.pk, "workspace": "DEV",
                                                   "runtime": "main", "release": release.pk}, format="json")


def test_quota_counts_the_driver_and_executors_and_names_the_job(tenant_a, fake_cluster, fake, spark_data_cluster):
    bind_to(tenant_a, fake_cluster)
    ws = tenant_a.project.workspaces.get(kind="DEV")
    # web 0.5 + driver 1 + 3 executors x 2 = 7.5 cores; 256 + 1024 + 3 x 512 = 2816 MiB
    ws.cpu_quota, ws.mem_quota = 7, 4096
    ws.save()
    release = release_of(tenant_a, SPEC)
    answer = _post(tenant_a, release)
    assert answer.status_code == 400, answer.content
    messages = answer.json()["quota"]
    assert any("CPU quota of workspace" in m and "exceeded by 0.50 cores" in m and "requests 7.50" in m
               for m in messages), messages
    assert any("jobs.load: 7.00 cores, 2560 MiB (driver + 3 executors" in m and "sparkConf.driverResource" in m
               for m in messages), messages
    assert not Deployment.objects.exists() and not Runtime.objects.exists() and not fake.applied()

    # the data cluster's CPU overcommit for the workspace applies to them, as to services
    from apps.clusters.models import WorkspaceOvercommit

    WorkspaceOvercommit.objects.create(cluster=spark_data_cluster, workspace="DEV", cpu_ratio=2, mem_ratio=1)
    answer = _post(tenant_a, release)  # 0.5 + (1 + 3 x 2) / 2 = 4.0 cores
    assert answer.status_code == 201, answer.content
    # and it is counted for the workspace's next runtime: 4.0 + 4.0 > 7
    other = tenant_a.api().post("/api/deployments/", {"application": tenant_a.app.pk, "workspace": "DEV",
                                                      "runtime": "second", "release": release.pk}, format="json")
    assert other.status_code == 400 and "exceeded by 1.00 cores" in str(other.json()["quota"]), other.content


def test_memory_counts_too_and_bad_sizes_name_the_field(tenant_a, fake_cluster, spark_data_cluster):
    bind_to(tenant_a, fake_cluster)
    ws = tenant_a.project.workspaces.get(kind="DEV")
    ws.cpu_quota, ws.mem_quota = 100, 2048
    ws.save()
    answer = _post(tenant_a, release_of(tenant_a, SPEC))
    assert answer.status_code == 400 and "memory quota" in str(answer.json()["quota"]), answer.content
    assert "exceeded by 768 MiB" in str(answer.json()["quota"]), answer.content
    ws.mem_quota = 100000
    ws.save()
    bad = release_of(tenant_a, SPEC.replace("memory: 512", "memory: 100"))
    answer = _post(tenant_a, bad)
    assert answer.status_code == 400, answer.content
    body = answer.json()
    assert "jobs.load" in body and "executorResource.memory" in str(body["jobs.load"]), body
    assert not Deployment.objects.exists()


SPARK_STEP = """
version: "1.1"
stages:
  - stage:
      - spark:
          alias: transform
          params:
            resource: https://files.example/etl.py
            sparkConf:
              kind: client
              driverResource: {cpu: 1, memory: 1024}
              executorResource: {cpu: 2, memory: 512, replica: 3}
"""


def test_a_spark_steps_driver_and_executors_count_against_the_workspace_quota(engine, tenant_a,  # noqa: F811
                                                                               spark_data_cluster):
    """The `spark` action: driver + executors (7 cores here) beside the workspace's runtimes; over
    the quota the step fails naming itself and the quota, and nothing reaches the cluster (whose
    address answers nothing: a submission would fail with another reason)."""
    ws = tenant_a.project.workspaces.get(kind="DEV")
    ws.cpu_quota, ws.mem_quota = 6, 8192
    ws.save()
    run = engine.wait(engine.run(tenant_a, SPARK_STEP))
    task = engine.tasks(run)["transform"]
    assert run.status == "failed" and task.status == "failed", (run.reason, task.reason)
    assert "CPU quota of workspace" in task.reason and "step transform requests 7.00" in task.reason, task.reason
    assert "step transform: 7.00 cores, 2560 MiB (driver + 3 executors" in task.reason, task.reason
    assert not task.job_name  # never submitted

    # the data cluster's overcommit applies: (1 + 3 x 2) / 2 = 3.5 cores fit; the step goes on to
    # the cluster (and fails there, since nothing answers at its address)
    from apps.clusters.models import WorkspaceOvercommit

    WorkspaceOvercommit.objects.create(cluster=spark_data_cluster, workspace="DEV", cpu_ratio=2, mem_ratio=1)
    run = engine.wait(engine.run(tenant_a, SPARK_STEP))
    task = engine.tasks(run)["transform"]
    assert "quota" not in (task.reason or ""), task.reason
    assert task.job_name
