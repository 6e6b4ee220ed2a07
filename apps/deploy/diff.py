"""Differences between two releases: per workspace, a unified diff of the effective spec as YAML and
the list of changed paths."""

from __future__ import annotations

import difflib

import yaml

from apps.deploy.models import Release
from apps.deploy.summary import effective_for
from apps.projects.choices import WORKSPACE_ENVIRONMENT, WorkspaceKind
from diceyml import normalize_workspace
from speckit.errors import SpecInvalid

_MISSING = object()


def dump(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=True, default_flow_style=False, allow_unicode=True, width=100)


def changed_paths(old: object, new: object, path: tuple = ()) -> list[dict]:
    """Leaf-level changes: [{path, change: added|removed|changed, old, new}], paths dotted as in
    the spec errors (list items by index)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += changed_paths(old.get(key, _MISSING), new.get(key, _MISSING), (*path, key))
        return out
    if isinstance(old, list) and isinstance(new, list):
        out = []
        for i in range(max(len(old), len(new))):
            out += changed_paths(
                old[i] if i < len(old) else _MISSING, new[i] if i < len(new) else _MISSING, (*path, i)
            )
        return out
    dotted = ".".join(str(p) for p in path)
    if old is _MISSING and new is _MISSING:
        return []
    if old is _MISSING:
        return [{"path": dotted, "change": "added", "old": None, "new": new}]
    if new is _MISSING:
        return [{"path": dotted, "change": "removed", "old": old, "new": None}]
    if old != new or type(old) is not type(new):
        return [{"path": dotted, "change": "changed", "old": old, "new": new}]
    return []


def workspace_diff(release: Release, other: Release | None, workspace: str) -> dict:
    """What changes in `workspace` going from `other` (older, or None: nothing) to `release`."""
    entry = {
        "workspace": workspace,
        "environment": normalize_workspace(workspace),
        "unified": "",
        "changes": [],
        "error": None,
    }
    try:
        new = effective_for(release, workspace)
        old = effective_for(other, workspace) if other is not None else {}
    except SpecInvalid as exc:
        entry["error"] = f"the spec does not apply to {workspace}: {exc}"
        return entry
    old_name = f"v{other.version}" if other is not None else "(nothing)"
    lines = difflib.unified_diff(
        dump(old).splitlines(keepends=True) if old else [],
        dump(new).splitlines(keepends=True),
        fromfile=f"{old_name} ({workspace})",
        tofile=f"v{release.version} ({workspace})",
    )
    entry["unified"] = "".join(lines)
    entry["changes"] = changed_paths(old, new)
    return entry


def release_diff(release: Release, other: Release | None, workspace: str | None = None) -> dict:
    """The diff for one workspace (DEV, TEST, STAGING, PROD, any case) or, without one, for all four."""
    if workspace:
        kinds = [_workspace_kind(workspace)]
    else:
        kinds = list(WorkspaceKind.values)
    return {
        "release": release.pk,
        "version": release.version,
        "other": other.pk if other is not None else None,
        "other_version": other.version if other is not None else None,
        "workspaces": [workspace_diff(release, other, kind) for kind in kinds],
    }


def _workspace_kind(name: str) -> str:
    """DEV/TEST/STAGING/PROD for any spelling normalize_workspace accepts (ValueError otherwise)."""
    env = normalize_workspace(name)
    return next(str(kind) for kind, e in WORKSPACE_ENVIRONMENT.items() if e == env)
