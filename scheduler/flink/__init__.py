"""The `flink` cluster kind: a Flink session cluster reached by its REST URL (config `rest_url`),
or the managed local one of the standalone console (config `managed: true`, session.py).

It runs Flink jobs (JobSpec.command is `flink run` arguments: a jar through the REST API, a
PyFlink program through `flink run -py` in a sandboxed local process), stops them with
savepoints and starts them from one, and keeps a runtime's `engine: flink` services running
(services.py). Pipeline steps and ordinary services are refused (Capabilities.steps/runtimes).
"""

from __future__ import annotations

import threading
from pathlib import Path

from scheduler.base import ClusterRef
from scheduler.flink.executor import CAPABILITIES, FlinkExecutor, FlinkInspector, cluster_dir

__all__ = ["CAPABILITIES", "LABEL", "FlinkExecutor", "create_executor", "create_inspector"]

LABEL = "Flink session cluster"

_EXECUTORS: dict[Path, FlinkExecutor] = {}
_GUARD = threading.Lock()


def create_executor(cluster: ClusterRef) -> FlinkExecutor:
    """One executor per cluster directory in this process (it owns the managed session's supervision)."""
    key = cluster_dir(cluster)
    with _GUARD:
        found = _EXECUTORS.get(key)
        if found is None or found.cluster.config != cluster.config:
            found = _EXECUTORS[key] = FlinkExecutor(cluster)
        return found


def create_inspector(cluster: ClusterRef) -> FlinkInspector:
    """The check and snapshot; a managed cluster's come from its executor (which starts it)."""
    if cluster.config.get("managed"):
        return create_executor(cluster)
    return FlinkInspector(cluster)
