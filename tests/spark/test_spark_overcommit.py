"""CPU overcommit on the managed Spark cluster: standalone Spark has no requests and limits, its
master hands out whole task slots, so the cluster's CPU ratio is the worker offering cores x ratio
slots (executors fit beside each other and share the CPUs, as pods requesting cores / ratio share a
node's); the quota keeps counting each job's cores / its workspace's ratio. The ratio comes from the
cluster's workspace overcommits (the highest); a change of it restarts the worker with the new slots."""

from __future__ import annotations

import contextlib

import pytest

from scheduler.base import ClusterRef
from scheduler.spark import rest
from scheduler.spark.managed import ManagedCluster

from .conftest import needs_spark, wait_for

pytestmark = pytest.mark.spark


def _alive_cores(master: rest.Master) -> list[int]:
    return [int(w["cores"]) for w in rest.master_json(master).get("workers", []) if w.get("state") == "ALIVE"]


def test_the_worker_offers_cores_times_the_ratio_and_follows_its_change(spark_root):
    from scheduler.local import create_executor as local_executor

    needs_spark()
    config = {"managed": True, "root": str(spark_root), "worker_cores": 1, "worker_memory_mib": 512,
              "worker_cpu_ratio": 2.5}
    cluster = ManagedCluster(ClusterRef(name="spark-ratio", kind="spark", config=config), spark_root)
    try:
        master = cluster.ensure()
        assert _alive_cores(master) == [2]  # 1 core x 2.5, rounded down
        # the ratio raised: the worker is replaced by one offering the new slots
        changed = ManagedCluster(ClusterRef(name="spark-ratio", kind="spark",
                                            config={**config, "worker_cpu_ratio": 3}), spark_root)
        changed.ensure()
        wait_for(lambda: _alive_cores(master) == [3], 120, "a worker offering 3 slots")
        # no ratio: the cores as they are
        plain = ManagedCluster(ClusterRef(name="spark-ratio", kind="spark",
                                          config={k: v for k, v in config.items() if k != "worker_cpu_ratio"}),
                               spark_root)
        assert plain.advertised_cores() == 1
    finally:
        with contextlib.suppress(Exception):
            cluster.stop()
        local = local_executor(ClusterRef(name="local", kind="local", config={"root": str(spark_root)}))
        local.close()


@pytest.mark.django_db
def test_the_managed_clusters_ratio_is_the_highest_of_its_workspaces():
    from apps.clusters.models import Cluster, WorkspaceOvercommit
    from apps.clusters.services import cluster_ref

    managed = Cluster.objects.create(name="spark-local-2", kind="spark", all_organizations=True)
    assert "worker_cpu_ratio" not in cluster_ref(managed).config
    WorkspaceOvercommit.objects.create(cluster=managed, workspace="DEV", cpu_ratio=3, mem_ratio=1)
    WorkspaceOvercommit.objects.create(cluster=managed, workspace="TEST", cpu_ratio=1.5, mem_ratio=1)
    config = cluster_ref(managed).config
    assert config["managed"] is True and config["worker_cpu_ratio"] == 3.0
    # a cluster registered by its endpoint runs its own workers: nothing to offer there
    remote = Cluster.objects.create(name="spark-remote", kind="spark", all_organizations=True,
                                    api_server="http://127.0.0.1:6066")
    WorkspaceOvercommit.objects.create(cluster=remote, workspace="DEV", cpu_ratio=3, mem_ratio=1)
    assert "worker_cpu_ratio" not in cluster_ref(remote).config
