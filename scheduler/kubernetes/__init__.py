"""The Kubernetes kind: a pure renderer (render.py), an Executor on the official client
(driver.py), steps as Jobs with the agent beside them (steps.py), and inspection (inspect.py)."""

from __future__ import annotations

from scheduler.base import ClusterRef, Executor
from scheduler.kubernetes.meta import CAPABILITIES

__all__ = ["CAPABILITIES", "LABEL", "create_executor", "create_inspector"]

LABEL = "Kubernetes"


def create_executor(cluster: ClusterRef) -> Executor:
    # The kubernetes client is imported only when a Kubernetes cluster is used.
    from scheduler.kubernetes.driver import KubernetesExecutor

    return KubernetesExecutor(cluster)


def create_inspector(cluster: ClusterRef) -> Executor:
    """The executor itself: asking a Kubernetes cluster costs no more than running work there."""
    return create_executor(cluster)
