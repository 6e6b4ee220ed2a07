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
    assert usage.available is False and "metrics-server" in usage.reason and "summary API" in usage.reason
    report = executor.check()
    assert report["metrics"]["source"] == "" and "summary" in report["metrics"]["detail"]


def test_quantities():
    assert quantity("250m") == 0.25 and quantity("12345678n") == pytest.approx(0.012345678)
    assert quantity("64Mi") == 64 * 1024 ** 2 and quantity("2") == 2.0 and quantity("1500Ki") == 1500 * 1024
    with pytest.raises(ValueError):
        quantity("12Q")


AUTOSCALED = """version: "2.0"
services:
  web:
    image: registry.example/web:1
    resources: {cpu: 0.2, mem: 64}
    deployments:
      autoscale: {min: 2, max: 5, cpu_percent: 60}
"""


def test_autoscale_becomes_an_hpa_the_api_server_accepts(k8s_cluster):
    from kubernetes import client

    from diceyml import parse_dice_yml
    from scheduler.base import ServiceGroup
    from tests.k8s.conftest import wait_for

    executor = KubernetesExecutor(ClusterRef("ktest", "kubernetes", config={"kubeconfig": k8s_cluster.kubeconfig}),
                                  api_client=k8s_cluster.api_client)
    runtime = RuntimeRef("acme", "shop", "web", "DEV", f"a{uuid.uuid4().hex[:6]}")
    group = ServiceGroup(runtime, parse_dice_yml(AUTOSCALED, workspace="DEV"), release="r1", cluster_name="ktest")
    try:
        executor.apply(group)
        hpa = client.AutoscalingV2Api(k8s_cluster.api_client).read_namespaced_horizontal_pod_autoscaler(
            "web", runtime.namespace)
        assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (2, 5)
        assert hpa.spec.metrics[0].resource.target.average_utilization == 60
        # what the HPA (here: a person) scaled to survives the next deploy
        apps = client.AppsV1Api(k8s_cluster.api_client)
        executor.scale(runtime, "web", 4)
        executor.apply(ServiceGroup(runtime, group.spec, release="r2", cluster_name="ktest"))
        assert apps.read_namespaced_deployment("web", runtime.namespace).spec.replicas == 4
        # a release without autoscale prunes the HPA
        executor.apply(ServiceGroup(runtime, parse_dice_yml(AUTOSCALED.replace(
            "      autoscale: {min: 2, max: 5, cpu_percent: 60}\n", "      replicas: 1\n"), workspace="DEV"),
            release="r3", cluster_name="ktest"))
        wait_for(lambda: not client.AutoscalingV2Api(k8s_cluster.api_client)
                 .list_namespaced_horizontal_pod_autoscaler(runtime.namespace).items, 10, "the HPA to be pruned")
    finally:
        executor.destroy(runtime)


def test_kubelet_summary_figures_and_the_shared_scaling_rule():
    from scheduler.autoscale import decide
    from scheduler.base import ReplicaUsage, RuntimeUsage
    from scheduler.kubernetes.metrics import _cpu_memory

    # a pod the kubelet has not measured twice yet has no CPU figure: None, never 0
    assert _cpu_memory({"cpu": {"usageCoreNanoSeconds": 5}, "memory": {"workingSetBytes": 4096}}) == (None, 4096)
    assert _cpu_memory({"cpu": {"usageNanoCores": 250_000_000}}) == (250.0, None)
    assert _cpu_memory(None) == (None, None)

    ref = RuntimeRef("acme", "shop", "web", "DEV", "main")
    hot = RuntimeUsage(ref, True, replicas=(ReplicaUsage("web", "web-a", cpu_millicores=200.0),), source="kubelet-summary")
    unit = {"name": "web", "replicas": 1, "autoscale": {"min": 1, "max": 3, "cpu_percent": 50, "cpu_request": 0.1,
                                                          "last_change": 100.0}}
    assert decide(unit, hot, 110.0, 30.0, 120.0) is None  # inside the up cooldown
    made = decide(unit, hot, 131.0, 30.0, 120.0)
    assert (made.current, made.desired) == (1, 3) and made.message.startswith("web: 1 -> 3 replicas (cpu 200%")
    cold = RuntimeUsage(ref, True, replicas=(ReplicaUsage("web", "web-a", cpu_millicores=0.0),
                                              ReplicaUsage("web", "web-b", cpu_millicores=1.0)))
    assert decide({**unit, "replicas": 2}, cold, 200.0, 30.0, 120.0) is None  # inside the down cooldown
    assert decide({**unit, "replicas": 2}, cold, 221.0, 30.0, 120.0).desired == 1
