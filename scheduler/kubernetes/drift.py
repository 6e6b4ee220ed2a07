"""Drift of a Kubernetes runtime, the way `kubectl diff` and Argo CD see it: each rendered object
is server-side applied as a dry run (with the console's field manager), and what the API server
answers, the object as it would be after the apply with every default and admission change, is
compared with the live object. Fields the cluster owns (status, resourceVersion, generation,
managedFields, uid, timestamps) are left out; everything else that differs is drift. Objects the
release does not have but that carry the console's label are drift too (the next apply prunes
them)."""

from __future__ import annotations

from typing import Any

from scheduler.base import DriftItem

CLUSTER_META = frozenset({"resourceVersion", "generation", "managedFields", "uid", "creationTimestamp", "selfLink"})
MAX_ITEMS = 200


def _clean(obj: dict) -> dict:
    out = {k: v for k, v in obj.items() if k not in ("status",)}
    out["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in CLUSTER_META}
    return out


def _walk(path: str, desired: Any, live: Any, out: list[tuple[str, Any, Any]]) -> None:
    if isinstance(desired, dict) and isinstance(live, dict):
        for key in sorted(set(desired) | set(live), key=str):
            _walk(f"{path}.{key}" if path else str(key), desired.get(key), live.get(key), out)
    elif isinstance(desired, list) and isinstance(live, list) and len(desired) == len(live):
        for i, (a, b) in enumerate(zip(desired, live, strict=True)):
            _walk(f"{path}.{i}", a, b, out)
    elif desired != live:
        out.append((path, desired, live))


def object_drift(name: str, would_be: dict, live: dict) -> list[DriftItem]:
    """The differences between the object as the dry-run apply would leave it and as it is."""
    found: list[tuple[str, Any, Any]] = []
    _walk("", _clean(would_be), _clean(live), found)
    return [DriftItem(name, path, desired, current) for path, desired, current in found[:MAX_ITEMS]]


def label(obj: dict) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"
