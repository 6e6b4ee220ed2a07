"""Metrics on Kubernetes: without a resource metrics API (ktestenv runs no metrics-server) the
capability report says so and usage() is unavailable with the reason, never an error."""

from __future__ import annotations

import uuid

import pytest

from scheduler.base import ClusterRef, RuntimeRef, usage_of
from scheduler.kubernetes.driver import KubernetesExecutor
from scheduler.kubernetes.metrics import quantity

pytestmark = pytest.mark.k8s


def test_without_metrics_server_usage_is_unavailable(k8s_cluster):
    executor = KubernetesExecutor(ClusterRef("ktest", "kubernetes", config={"kubeconfig": k8s_cluster.kubeconfig}),
                                  api_client=k8s_cluster.api_client)
    assert executor.check()["features"]["metrics"] is False
    usage = usage_of(executor, RuntimeRef("acme", "shop", "web", "DEV", f"m{uuid.uuid4().hex[:6]}"))
    assert usage.available is False and "metrics-server" in usage.reason


def test_quantities():
    assert quantity("250m") == 0.25 and quantity("12345678n") == pytest.approx(0.012345678)
    assert quantity("64Mi") == 64 * 1024 ** 2 and quantity("2") == 2.0 and quantity("1500Ki") == 1500 * 1024
    with pytest.raises(ValueError):
        quantity("12Q")
