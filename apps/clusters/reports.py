"""The resource report: per project, workspace and cluster, quota against what is requested and
limited (from the last sync), what the nodes offer, and what the overcommit ratios save."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from apps.clusters.models import NamespaceUsage, Node
from apps.clusters.services import overcommit_table
from apps.projects.choices import WorkspaceKind
from scheduler.base import dns_label

MIB = 1024 * 1024


def _cores(millis: int) -> float:
    return round(millis / 1000, 3)


def _mib(b: int) -> int:
    return round(b / MIB)


def cluster_allocatable(cluster_ids) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = defaultdict(lambda: {"cpu": 0, "memory": 0, "nodes": 0})
    for cluster_id, alloc in Node.objects.filter(cluster_id__in=cluster_ids).values_list("cluster_id", "allocatable"):
        out[cluster_id]["cpu"] += (alloc or {}).get("cpu", 0)
        out[cluster_id]["memory"] += (alloc or {}).get("memory", 0)
        out[cluster_id]["nodes"] += 1
    return out


def resource_report(workspaces) -> list[dict]:
    """One row per workspace (an already scoped queryset of Workspace)."""
    workspaces = list(workspaces.select_related("project__organization", "cluster").prefetch_related(
        "cluster__overcommits"))
    clusters = {ws.cluster_id: ws.cluster for ws in workspaces}
    alloc = cluster_allocatable(list(clusters))
    projects = {dns_label(ws.project.slug) for ws in workspaces}
    usage: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for u in NamespaceUsage.objects.filter(cluster_id__in=list(clusters), project__in=projects):
        row = usage[(u.cluster_id, u.org, u.project, u.workspace)]
        for f in ("cpu_requests", "cpu_limits", "mem_requests", "mem_limits", "pods"):
            row[f] += getattr(u, f)
        row["namespaces"] += 1
    ratios = {cid: overcommit_table(c) for cid, c in clusters.items()}
    rows = []
    for ws in workspaces:
        org, proj = dns_label(ws.project.organization.slug), dns_label(ws.project.slug)
        u = usage.get((ws.cluster_id, org, proj, ws.kind), {})
        r = ratios[ws.cluster_id][ws.kind]
        cpu_ratio, mem_ratio = float(r["cpu_ratio"]), float(r["mem_ratio"])
        req_cpu, lim_cpu = u.get("cpu_requests", 0), u.get("cpu_limits", 0)
        req_mem, lim_mem = u.get("mem_requests", 0), u.get("mem_limits", 0)
        # Without overcommit the request would be ratio x higher (never above the limit).
        saved_cpu = max(0, min(lim_cpu, req_cpu * cpu_ratio) - req_cpu) if lim_cpu else req_cpu * (cpu_ratio - 1)
        saved_mem = max(0, min(lim_mem, req_mem * mem_ratio) - req_mem) if lim_mem else req_mem * (mem_ratio - 1)
        a = alloc.get(ws.cluster_id, {"cpu": 0, "memory": 0, "nodes": 0})
        rows.append({
            "project": str(ws.project), "project_id": ws.project_id, "workspace": ws.kind,
            "cluster": ws.cluster.name,
            "quota": {"cpu": float(ws.cpu_quota), "memory_mib": ws.mem_quota},
            "requested": {"cpu": _cores(req_cpu), "memory_mib": _mib(req_mem)},
            "limits": {"cpu": _cores(lim_cpu), "memory_mib": _mib(lim_mem)},
            "pods": u.get("pods", 0), "namespaces": u.get("namespaces", 0),
            "cluster_allocatable": {"cpu": _cores(a["cpu"]), "memory_mib": _mib(a["memory"]), "nodes": a["nodes"]},
            "overcommit": {"cpu_ratio": cpu_ratio, "mem_ratio": mem_ratio},
            "saved": {"cpu": _cores(int(saved_cpu)), "memory_mib": _mib(int(saved_mem))},
            "quota_used": {
                "cpu": _pct(req_cpu / 1000, ws.cpu_quota), "memory": _pct(req_mem / MIB, ws.mem_quota)},
            "memory_overcommit_danger": mem_ratio > 1,
            "warnings": _warnings(ws.kind, mem_ratio, req_cpu, req_mem, ws),
        })
    return rows


def _pct(used: float, quota) -> int | None:
    quota = float(quota or 0)
    return round(100 * used / quota) if quota else None


def _warnings(kind: str, mem_ratio: float, req_cpu: int, req_mem: int, ws) -> list[str]:
    out = []
    if mem_ratio > 1:
        out.append(f"memory overcommit x{mem_ratio:g}: pods may be OOM-killed when neighbours use their limits"
                   + (" (PROD!)" if kind == WorkspaceKind.PROD else ""))
    if req_cpu / 1000 > float(ws.cpu_quota or Decimal(0)):
        out.append("CPU requests exceed the workspace quota")
    if req_mem / MIB > (ws.mem_quota or 0):
        out.append("memory requests exceed the workspace quota")
    return out
