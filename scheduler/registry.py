"""Maps a cluster kind to its driver; the engine asks here for an Executor of a cluster."""

from __future__ import annotations

from collections.abc import Callable

from scheduler.base import ClusterRef, Executor, ExecutorError

_FACTORIES: dict[str, Callable[[ClusterRef], Executor]] = {}


def register(kind: str, factory: Callable[[ClusterRef], Executor]) -> None:
    _FACTORIES[kind] = factory


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
