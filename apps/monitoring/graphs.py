"""What the runtime page's graphs show: per service, CPU, memory and restarts over the last hour
or day as sparklines, with the latest values."""

from __future__ import annotations

from django.conf import settings

from apps.clusters.models import Cluster
from apps.deploy.models import Runtime
from apps.monitoring import metrics, sparkline
from apps.monitoring.models import RuntimeHealth


def _mib(value: int | None) -> float | None:
    return None if value is None else value / 1024 / 1024


def runtime_graphs(runtime: Runtime, window: str = "1h") -> dict:
    if window not in metrics.WINDOWS:
        window = "1h"
    rows = []
    for service, points in sorted(metrics.series(runtime, window).items()):
        last = points[-1]
        rows.append({
            "service": service,
            "cpu": sparkline.svg([p["cpu_millicores"] for p in points], label=f"{service} CPU", floor=100.0),
            "memory": sparkline.svg([_mib(p["memory_bytes"]) for p in points], label=f"{service} memory", floor=16.0),
            "restarts": sparkline.svg([float(p["restarts"]) for p in points], label=f"{service} restarts", floor=1.0),
            "cpu_now": last["cpu_millicores"], "memory_now": _mib(last["memory_bytes"]),
            "restarts_now": last["restarts"], "replicas": last["replicas"], "ready": last["ready"],
            "points": len(points),
        })
    seen = RuntimeHealth.objects.filter(runtime=runtime).first()
    return {"runtime": runtime, "window": window, "windows": list(metrics.WINDOWS), "rows": rows,
            "unavailable": seen.metrics_reason if seen is not None and not seen.metrics_available else "",
            "points": sum(r["points"] for r in rows), "poll_ms": _poll_ms()}


def cluster_usage(cluster: Cluster, window: str = "1h") -> dict:
    """Per node: CPU and memory in use over the window, against what the node can give."""
    if window not in metrics.WINDOWS:
        window = "1h"
    allocatable = {n.name: n.allocatable or {} for n in cluster.nodes.all()}
    rows = []
    for node, points in sorted(metrics.node_series(cluster, window).items()):
        alloc = allocatable.get(node, {})
        last = points[-1]
        rows.append({
            "node": node,
            "cpu": sparkline.svg([p["cpu_millicores"] for p in points], label=f"{node} CPU",
                                 floor=float(alloc.get("cpu") or 100.0)),
            "memory": sparkline.svg([_mib(p["memory_bytes"]) for p in points], label=f"{node} memory",
                                    floor=(_mib(alloc.get("memory")) or 16.0)),
            "cpu_now": last["cpu_millicores"], "memory_now": _mib(last["memory_bytes"]),
            "cpu_total": alloc.get("cpu"), "memory_total": _mib(alloc.get("memory")), "points": len(points),
        })
    return {"cluster": cluster, "window": window, "windows": list(metrics.WINDOWS), "rows": rows,
            "points": sum(r["points"] for r in rows), "poll_ms": _poll_ms()}


def _poll_ms() -> int:
    """How often a page's graphs look again without a push (the fallback), in ms."""
    return int(float(getattr(settings, "DICE_METRICS_FALLBACK_POLL", 300.0)) * 1000)
