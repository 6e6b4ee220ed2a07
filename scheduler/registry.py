"""The cluster kinds and their drivers: the one place that maps a cluster to its Executor.

A kind is one package under scheduler/ with four names at its top: `LABEL` (what the console
calls it), `CAPABILITIES` (what the kind can do, scheduler.base.Capabilities),
`create_executor(cluster: ClusterRef) -> Executor` and `create_inspector(cluster: ClusterRef)
-> Inspector` (the check, snapshot and inspection, without what running work costs), and
optionally `isolation_report() -> dict` (how it isolates tenants on this machine). Adding a
kind is that package, its tests, and one entry in KINDS. Drivers are imported lazily, so the
Kubernetes client is imported only when a Kubernetes cluster is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from scheduler.base import Capabilities, ClusterRef, Executor, ExecutorError, Inspector

# kind -> the package of its driver
KINDS: dict[str, str] = {
    "local": "scheduler.local",
    "kubernetes": "scheduler.kubernetes",
    "spark": "scheduler.spark",
    "flink": "scheduler.flink",
}

# Kinds registered at run time (test doubles, plugins): kind -> (factory, capabilities, label).
_REGISTERED: dict[str, tuple[Callable[[ClusterRef], Executor], Capabilities, str]] = {}
_ISOLATION: dict[str, Callable[[], dict]] = {}


def register(kind: str, factory: Callable[[ClusterRef], Executor], capabilities: Capabilities | None = None,
             label: str = "") -> None:
    """A kind whose driver lives outside scheduler/ (a test double)."""
    _REGISTERED[kind] = (factory, capabilities or Capabilities(), label or kind)


def register_isolation(kind: str, describe: Callable[[], dict]) -> None:
    """How a kind registered at run time isolates tenants (a kind's package says it with its
    optional `isolation_report()`)."""
    _ISOLATION[kind] = describe


def isolation(kind: str) -> dict | None:
    """How a kind isolates tenants on this machine, as plain data with at least `isolation`
    ("none" when tenant code shares the console's user and view of the machine); None when the
    kind does not say (a Kubernetes cluster's pods)."""
    describe = _ISOLATION.get(kind)
    if describe is None and kind in KINDS:
        describe = getattr(importlib.import_module(KINDS[kind]), "isolation_report", None)
    return describe() if describe is not None else None


def kinds() -> list[str]:
    return sorted({*KINDS, *_REGISTERED})


def _driver(kind: str):
    if kind in _REGISTERED:
        factory, caps, label = _REGISTERED[kind]
        return factory, caps, factory, label
    if kind not in KINDS:
        raise ExecutorError(f"no driver for cluster kind {kind!r} (known: {', '.join(kinds())})")
    module = importlib.import_module(KINDS[kind])
    return module.create_executor, module.CAPABILITIES, module.create_inspector, module.LABEL


def executor_for(cluster: ClusterRef) -> Executor:
    """The Executor of a cluster (a kind's driver may hand out one per cluster and reuse it)."""
    return _driver(cluster.kind)[0](cluster)


def capabilities(kind: str) -> Capabilities:
    """What clusters of the kind can do, without connecting to one."""
    return _driver(kind)[1]


def inspector_for(cluster: ClusterRef) -> Inspector:
    """What answers the check, the sync's snapshot, node labels and the inspection of a cluster."""
    return _driver(cluster.kind)[2](cluster)


def choices() -> list[tuple[str, str]]:
    """(kind, label) of every kind: what a cluster row may be (apps.clusters' model choices)."""
    return [(kind, _driver(kind)[3]) for kind in kinds()]
