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


def test_a_sampling_pass_asks_each_kubelet_for_its_summary_once(k8s_cluster, k8s_namespace, monkeypatch):
    """The metrics worker measures every runtime, then the nodes, in one pass: each node's kubelet
    summary (through the API server's node proxy) is requested once for all of them, afresh in the
    next pass, and never lent to a client with other credentials."""
    import copy

    from kubernetes import client

    from scheduler.base import sampling_pass
    from scheduler.kubernetes import metrics
    from tests.k8s.conftest import NODE_NAMES

    core = k8s_cluster.core
    for i, node in enumerate(NODE_NAMES):  # bound to a node by name: no scheduler involved
        core.create_namespaced_pod(k8s_namespace, {
            "metadata": {"name": f"p{i}", "labels": {"dice.io/service": "web"}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "registry.example/web:1"}]}})
    pods = core.list_namespaced_pod(k8s_namespace).items
    assert {p.spec.node_name for p in pods} == set(NODE_NAMES)

    def counted(api: client.ApiClient) -> list[str]:
        asked: list[str] = []
        real = api.call_api

        def call_api(method, url, *args, **kwargs):
            if "/proxy/stats/summary" in url:
                asked.append(url.split("/nodes/", 1)[1].split("/", 1)[0])
            return real(method, url, *args, **kwargs)

        monkeypatch.setattr(api, "call_api", call_api)
        return asked

    api = k8s_cluster.api_client
    asked = counted(api)
    with sampling_pass():
        for _ in range(3):  # three runtimes with pods on these nodes
            metrics._summary_pods(api, k8s_namespace, pods)
        metrics.node_usage(api)  # and the nodes' own sample
        assert sorted(asked) == sorted(NODE_NAMES)
        other_config = copy.deepcopy(api.configuration)
        other_config.api_key = {"authorization": "Bearer another-clusters-token"}
        other = client.ApiClient(other_config)
        other_asked = counted(other)
        metrics._summary_pods(other, k8s_namespace, pods)  # other credentials: asks for itself
        assert sorted(other_asked) == sorted(NODE_NAMES)
    with sampling_pass():  # the next pass asks again
        metrics._summary_pods(api, k8s_namespace, pods)
    assert sorted(asked) == sorted(NODE_NAMES * 2)
    metrics._summary_pods(api, k8s_namespace, pods)  # outside a pass, every call asks
    assert sorted(asked) == sorted(NODE_NAMES * 3)
