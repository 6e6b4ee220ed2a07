"""Maps a cluster kind to its driver; the engine asks here for an Executor of a cluster."""

from __future__ import annotations

from collections.abc import Callable

from scheduler.base import ClusterRef, Executor, ExecutorError

_FACTORIES: dict[str, Callable[[ClusterRef], Executor]] = {}
_ISOLATION: dict[str, Callable[[], dict]] = {}


def register(kind: str, factory: Callable[[ClusterRef], Executor]) -> None:
    _FACTORIES[kind] = factory


def register_isolation(kind: str, describe: Callable[[], dict]) -> None:
    """How a kind isolates tenants on this machine, as plain data with at least `isolation`
    ("none" when tenant code shares the console's user and view of the machine)."""
    _ISOLATION[kind] = describe


def isolation(kind: str) -> dict | None:
    """The isolation report of a kind (None: the kind does not say; a Kubernetes cluster's pods)."""
    _load_builtin()
    describe = _ISOLATION.get(kind)
    return describe() if describe is not None else None


def kinds() -> list[str]:
    _load_builtin()
    return sorted(_FACTORIES)


def get_executor(cluster: ClusterRef) -> Executor:
    _load_builtin()
    try:
        factory = _FACTORIES[cluster.kind]
    except KeyError:
        raise ExecutorError(f"no driver for cluster kind {cluster.kind!r} (known: {', '.join(sorted(_FACTORIES))})")
    return factory(cluster)


def _load_builtin() -> None:
    """Import the built-in drivers lazily: each registers itself, and the kubernetes client is
    only imported when a Kubernetes cluster is used."""
    import importlib

    for module in ("scheduler.local", "scheduler.kubernetes"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
