"""What the local kind can do, and what it reports about the console's own machine (the
capability report and the node snapshot of the periodic sync)."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path
from typing import Any

from scheduler.base import Capabilities, ExecutorError, NodeUsage, base_report
from scheduler.local.metrics import machine_usage
from scheduler.local.state import alive, read_json

# Processes on this machine: they run the release's files (no images), every job may be given
# files, a job is accepted in memory, and steps share the console's filesystem. No namespaces of their own, one node, nothing to place
# by labels (the console keeps dice/ node labels itself), no ingress, no operators.
CAPABILITIES = Capabilities(hosts=True, release_files=True, files=True, in_memory_jobs=True, console_filesystem=True,
                            drift=True, metrics=True)


def check() -> dict[str, Any]:
    """The capability report of the local kind: always reachable, nothing to be granted."""
    report = base_report(True, version="local", capabilities=CAPABILITIES)
    report["metrics"] = {"source": "proc", "detail": "each replica's process tree, read from /proc"}
    return report


def _memory_bytes() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _running(root: Path | None) -> tuple[list[dict], list[dict]]:
    """(namespaces with usage, pods) of what the root's runtimes run now, read from their
    state.json files without taking the root's lock (the worker supervising them keeps it).
    A replica counts when its process is alive; its request is its unit's (cores, MiB)."""
    namespaces, pods = [], []
    if root is None:
        return namespaces, pods
    for path in sorted((root / "runtimes").glob("*/state.json")):
        rt = read_json(path) or {}
        ref = rt.get("runtime") or {}
        dice = {f"dice.io/{k}": str(ref.get(k) or "") for k in ("org", "project", "app", "workspace", "name")}
        dice["dice.io/runtime"] = dice.pop("dice.io/name")
        usage = {"pods": 0, "cpu_requests": 0, "cpu_limits": 0, "mem_requests": 0, "mem_limits": 0}
        for unit in (rt.get("units") or {}).values():
            for key, slot in sorted((unit.get("slots") or {}).items()):
                current = (slot or {}).get("current") or {}
                if not alive(current.get("pid"), current.get("start_time")):
                    continue
                cpu = float(unit.get("cpu_request", unit.get("cpu") or 0))
                mem = int(unit.get("mem_request_mib", unit.get("mem_mib") or unit.get("mem") or 0))
                usage["pods"] += 1
                usage["cpu_requests"] += round(cpu * 1000)
                usage["cpu_limits"] += round(float(unit.get("cpu") or 0) * 1000)
                usage["mem_requests"] += mem * 1024 * 1024
                usage["mem_limits"] += int(unit.get("mem_mib") or unit.get("mem") or 0) * 1024 * 1024
                pods.append({"namespace": path.parent.name, "name": f"{unit.get('name', '')}-{key}",
                             "node": socket.gethostname(), "labels": dice, "phase": "Running", "images": []})
        namespaces.append({"name": path.parent.name, "labels": dice, "dice": dice, **usage,
                           "quota_hard": {}, "quota_used": {}, "phase": "Active"})
    return namespaces, pods


def snapshot(root: Path | None = None) -> dict[str, Any]:
    """The machine as one node (CPU count, total memory), and what the runtimes of `root` run on
    it: a namespace per runtime with its usage, a pod per live replica, their requests on the node."""
    resources = {"cpu": (os.cpu_count() or 1) * 1000, "memory": _memory_bytes()}
    namespaces, pods = _running(root)
    requests = {"cpu": sum(n["cpu_requests"] for n in namespaces), "memory": sum(n["mem_requests"] for n in namespaces)}
    limits = {"cpu": sum(n["cpu_limits"] for n in namespaces), "memory": sum(n["mem_limits"] for n in namespaces)}
    node = {
        "name": socket.gethostname(), "capacity": resources, "allocatable": resources,
        "requests": requests, "limits": limits,
        "labels": {"kubernetes.io/os": platform.system().lower(), "kubernetes.io/arch": platform.machine()},
        "conditions": [{"type": "Ready", "status": "True", "reason": "Local", "message": ""}],
        "ready": True, "unschedulable": False, "pod_count": len(pods), "internal_ip": "127.0.0.1",
        "kubelet_version": "",
    }
    return {"nodes": [node], "namespaces": namespaces, "pods": pods, "workloads": []}


class LocalInspector:
    """The Inspector of the local kind: what it reports needs no supervision of the root (a web
    process checking the local cluster must not take over the worker's processes)."""

    capabilities = CAPABILITIES

    def __init__(self, root: Path | None = None) -> None:
        self.root = root

    def check(self) -> dict[str, Any]:
        return check()

    def snapshot(self) -> dict[str, Any]:
        return snapshot(self.root)

    def node_usage(self) -> list[NodeUsage]:
        """The machine as its one node: CPU busy (all processes, not only the cluster's) and memory in use."""
        cpu, memory = machine_usage()
        return [NodeUsage(name=socket.gethostname(), cpu_millicores=cpu, memory_bytes=memory)]

    def set_node_labels(self, node: str, labels: dict[str, str | None]) -> dict[str, str]:
        raise ExecutorError("the local cluster keeps no node labels: the console keeps them (capabilities.node_labels)")

    def inspection_data(self) -> dict[str, Any]:
        return {"nodes": [], "pods": [], "certificates": [], "pvcs": [], "quotas": [], "namespaces": {}}


INSPECTOR = LocalInspector()
