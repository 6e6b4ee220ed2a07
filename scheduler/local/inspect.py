"""What the local kind can do, and what it reports about the console's own machine (the
capability report and the node snapshot of the periodic sync)."""

from __future__ import annotations

import os
import platform
import socket
from typing import Any

from scheduler.base import Capabilities, ExecutorError, NodeUsage, base_report
from scheduler.local.metrics import machine_usage

# Processes on this machine: they run the release's files (no images), every job may be given
# files, a job is accepted in memory, and steps share the console's filesystem. No namespaces of their own, one node, nothing to place
# by labels (the console keeps dice/ node labels itself), no ingress, no operators.
CAPABILITIES = Capabilities(hosts=True, release_files=True, files=True, in_memory_jobs=True, console_filesystem=True,
                            metrics=True)


def check() -> dict[str, Any]:
    """The capability report of the local kind: always reachable, nothing to be granted."""
    return base_report(True, version="local", capabilities=CAPABILITIES)


def _memory_bytes() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def snapshot() -> dict[str, Any]:
    """The machine as one node (CPU count, total memory); no namespaces, pods or workloads."""
    resources = {"cpu": (os.cpu_count() or 1) * 1000, "memory": _memory_bytes()}
    node = {
        "name": socket.gethostname(), "capacity": resources, "allocatable": resources,
        "requests": {"cpu": 0, "memory": 0}, "limits": {"cpu": 0, "memory": 0},
        "labels": {"kubernetes.io/os": platform.system().lower(), "kubernetes.io/arch": platform.machine()},
        "conditions": [{"type": "Ready", "status": "True", "reason": "Local", "message": ""}],
        "ready": True, "unschedulable": False, "pod_count": 0, "internal_ip": "127.0.0.1",
        "kubelet_version": "",
    }
    return {"nodes": [node], "namespaces": [], "pods": [], "workloads": []}


class LocalInspector:
    """The Inspector of the local kind: what it reports needs no supervision of the root (a web
    process checking the local cluster must not take over the worker's processes)."""

    capabilities = CAPABILITIES

    def check(self) -> dict[str, Any]:
        return check()

    def snapshot(self) -> dict[str, Any]:
        return snapshot()

    def node_usage(self) -> list[NodeUsage]:
        """The machine as its one node: CPU busy (all processes, not only the cluster's) and memory in use."""
        cpu, memory = machine_usage()
        return [NodeUsage(name=socket.gethostname(), cpu_millicores=cpu, memory_bytes=memory)]

    def set_node_labels(self, node: str, labels: dict[str, str | None]) -> dict[str, str]:
        raise ExecutorError("the local cluster keeps no node labels: the console keeps them (capabilities.node_labels)")

    def inspection_data(self) -> dict[str, Any]:
        return {"nodes": [], "pods": [], "certificates": [], "pvcs": [], "quotas": [], "namespaces": {}}


INSPECTOR = LocalInspector()
