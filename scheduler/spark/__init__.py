"""The `spark` cluster kind: a standalone Spark cluster registered by its master's REST URL, or the
console's managed local one (config `managed`). Jobs and pipeline steps run as Spark applications
(executor.py says how and why); services are refused. The Spark engine itself (pyspark's jars,
spark-submit) comes from `make engines` (.engines/spark), never the console's environment."""

from __future__ import annotations

from scheduler.base import ClusterRef
from scheduler.spark.executor import CAPABILITIES, SparkExecutor, SparkInspector

__all__ = ["CAPABILITIES", "LABEL", "SparkExecutor", "create_executor", "create_inspector"]

LABEL = "Spark (standalone)"


def create_executor(cluster: ClusterRef) -> SparkExecutor:
    return SparkExecutor(cluster)


def create_inspector(cluster: ClusterRef) -> SparkInspector | SparkExecutor:
    # The managed cluster's ports live under the local root: the executor knows where.
    return SparkExecutor(cluster) if cluster.config.get("managed") else SparkInspector(cluster)
