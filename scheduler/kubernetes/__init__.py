"""The Kubernetes driver: a pure renderer (render.py) and an Executor on the official client (driver.py)."""

from __future__ import annotations

from scheduler import registry
from scheduler.base import ClusterRef, Executor


def _factory(cluster: ClusterRef) -> Executor:
    # The kubernetes client is imported only when a Kubernetes cluster is used.
    from scheduler.kubernetes.driver import KubernetesExecutor

    return KubernetesExecutor(cluster)


registry.register("kubernetes", _factory)
