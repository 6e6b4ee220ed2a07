"""The `spark` cluster kind: a standalone Spark cluster registered by its master's REST URL, or the
console's managed local one (config `managed`). Jobs and pipeline steps run as Spark applications
(executor.py says how and why); services are refused. The Spark engine itself (pyspark's jars,
spark-submit) comes from `make engines` (.engines/spark), never the console's environment."""

from __future__ import annotations

import threading

from scheduler.base import ClusterRef
from scheduler.spark.executor import CAPABILITIES, SparkExecutor, SparkInspector

__all__ = ["CAPABILITIES", "LABEL", "SparkExecutor", "create_executor", "create_inspector"]

LABEL = "Spark (standalone)"


_EXECUTORS: dict[tuple, SparkExecutor] = {}
_GUARD = threading.Lock()


def create_executor(cluster: ClusterRef) -> SparkExecutor:
    """One executor per cluster and configuration in a process: run_job's check-then-submit is
    serialised by its lock, so two starts of one job never submit it twice."""
    key = (cluster.name, tuple(sorted((k, str(v)) for k, v in cluster.config.items())))
    with _GUARD:
        found = _EXECUTORS.get(key)
        if found is None:
            found = _EXECUTORS[key] = SparkExecutor(cluster)
        return found


def create_inspector(cluster: ClusterRef) -> SparkInspector | SparkExecutor:
    # The managed cluster's ports live under the local root: the executor knows where.
    return SparkExecutor(cluster) if cluster.config.get("managed") else SparkInspector(cluster)
