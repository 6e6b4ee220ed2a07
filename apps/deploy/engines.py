"""The executor of a runtime: its cluster's, joined by the workspace's data clusters when the
release has services on an engine (`engine: flink`), so those run on the Flink data cluster."""

from __future__ import annotations

from apps.clusters.services import capabilities, cluster_executor
from apps.deploy.models import Runtime
from scheduler.routed import EngineRouted


def runtime_executor(runtime: Runtime):
    """cluster_executor(runtime.cluster), routed to the workspace's data clusters by engine."""
    main = cluster_executor(runtime.cluster)
    engines = {}
    for cluster in runtime.workspace.data_clusters.all():
        engine = capabilities(cluster).data_engine  # "spark", "flink": at most one data cluster of each
        if engine and engine not in engines:
            engines[engine] = cluster_executor(cluster)
    return EngineRouted(main, engines)
