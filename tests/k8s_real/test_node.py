"""The real node itself: containers run (exit codes, logs through the API server's kubelet proxy),
pod networking on the node's bridge, Service routing (kube-proxy) and cluster DNS (CoreDNS) from
pods, a Service answering from this machine, and the locally built images under their usual names."""

from __future__ import annotations

import math
import time
import urllib.request

import pytest

from .conftest import K8sCluster, wait_for

pytestmark = [pytest.mark.k8s, pytest.mark.k8s_real]


def _pod(name: str, image: str, command: list[str], **spec) -> dict:
    return {"metadata": {"name": name, "labels": {"app": name}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": image, "command": command}],
                     **spec}}


def _terminated(core, ns: str, name: str):
    pod = core.read_namespaced_pod(name, ns)
    statuses = pod.status.container_statuses or []
    if statuses and statuses[0].state.terminated:
        return statuses[0].state.terminated
    return None


def _ready(core, ns: str, name: str) -> bool:
    statuses = core.read_namespaced_pod(name, ns).status.container_statuses or []
    return bool(statuses) and all(c.ready for c in statuses)


def test_node_is_real(k8s_node: K8sCluster):
    node = k8s_node.core.read_node("ktestenv-node")
    info = node.status.node_info
    assert info.container_runtime_version.startswith("containerd://")
    assert info.kubelet_version.startswith("v1.")
    addresses = {a.type: a.address for a in node.status.addresses}
    assert addresses["InternalIP"].startswith("10.244.")


def test_exit_codes_and_logs_of_real_containers(k8s_node: K8sCluster, node_namespace: str):
    core = k8s_node.core
    core.create_namespaced_pod(node_namespace, _pod(
        "ok", "busybox:stable", ["sh", "-c", "echo out-$((6*7)); echo err >&2; exit 0"]))
    core.create_namespaced_pod(node_namespace, _pod(
        "fails", "python:3.11-slim", ["python3", "-c", "import sys; print(sys.version_info[:2]); sys.exit(3)"]))
    ok = wait_for(lambda: _terminated(core, node_namespace, "ok"), 90, "the busybox pod to finish")
    fails = wait_for(lambda: _terminated(core, node_namespace, "fails"), 90, "the python pod to finish")
    assert (ok.exit_code, fails.exit_code) == (0, 3)
    assert fails.reason == "Error"
    # Logs come from the kubelet (API server -> kubelet on the node's address, TLS checked).
    # stdout and stderr are two pipes: the runtime keeps each stream's order, not their interleaving
    assert sorted(core.read_namespaced_pod_log("ok", node_namespace).split()) == ["err", "out-42"]
    assert core.read_namespaced_pod_log("fails", node_namespace).strip() == "(3, 11)"


def test_service_routing_and_cluster_dns(k8s_node: K8sCluster, node_namespace: str):
    """A pod reaches another through its Service's cluster name (CoreDNS answers, kube-proxy
    routes the ClusterIP); this machine reaches the same Service by its ClusterIP."""
    core = k8s_node.core
    server = _pod("web", "python:3.11-slim", ["python3", "-m", "http.server", "8000", "--directory", "/etc"])
    server["spec"]["restartPolicy"] = "Always"
    server["spec"]["containers"][0]["readinessProbe"] = {"tcpSocket": {"port": 8000}, "periodSeconds": 1}
    core.create_namespaced_pod(node_namespace, server)
    svc = core.create_namespaced_service(node_namespace, {
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8000}]}})
    wait_for(lambda: _ready(core, node_namespace, "web"), 90, "the web pod to be ready")
    host = f"web.{node_namespace}.svc.cluster.local"
    core.create_namespaced_pod(node_namespace, _pod(
        "client", "busybox:stable",
        ["sh", "-c", f"nslookup {host} && wget -q -O - http://{host}/hostname && wget -q -O - http://web/os-release"]))
    done = wait_for(lambda: _terminated(core, node_namespace, "client"), 90, "the client pod to finish")
    log = core.read_namespaced_pod_log("client", node_namespace)
    assert done.exit_code == 0, log
    assert svc.spec.cluster_ip in log  # DNS answered with the ClusterIP
    assert "Debian GNU/Linux 12" in log  # served through kube-proxy from the python image's /etc
    # From this machine: the ClusterIP, through kube-proxy's rules for locally made connections.
    body = wait_for(lambda: urllib.request.urlopen(f"http://{svc.spec.cluster_ip}/os-release", timeout=5).read(),
                    30, "the Service from the host")
    assert b"bookworm" in body


def test_fifty_pods_start(k8s_node: K8sCluster, node_namespace: str):
    """Pod start latency on the real node: created -> Running (containers started), p50/p99."""
    core = k8s_node.core
    created = {}
    for i in range(50):
        name = f"p{i:02d}"
        core.create_namespaced_pod(node_namespace, _pod(name, "busybox:stable", ["sleep", "3600"],
                                                        terminationGracePeriodSeconds=1))
        created[name] = time.time()

    def all_running():
        pods = core.list_namespaced_pod(node_namespace).items
        running = [p for p in pods if p.status.phase == "Running"]
        return pods if len(running) == 50 else None

    pods = wait_for(all_running, 300, "50 pods Running", interval=1)
    latencies = sorted(
        p.status.container_statuses[0].state.running.started_at.timestamp() - created[p.metadata.name]
        for p in pods)
    p50, p99 = latencies[len(latencies) // 2], latencies[math.ceil(len(latencies) * 0.99) - 1]
    print(f"\nreal node: 50 pods, start latency p50={p50:.2f}s p99={p99:.2f}s max={latencies[-1]:.2f}s")
    # Every one really started a container, after it was created.
    assert len(latencies) == 50 and latencies[0] > 0


def test_the_node_pulls_from_the_registry_beside_it_which_pods_cannot_reach(k8s_node: K8sCluster, node_namespace: str,
                                                                          node_registry: str):
    """containerd pulls `<registry>/...` over plain HTTP (its hosts.toml); a pod's connection to
    the registry's port is dropped, so no tenant can push over another's image."""
    from apps.pipelines.images.archive import push_archive
    from apps.pipelines.images.registry import Registry
    from tests.k8s.conftest import BIN_DIR

    registry = Registry(node_registry)
    pushed = push_archive(BIN_DIR / "images" / "busybox.tar", registry, "test/busybox", "pulled")
    image = f"{registry.host}/test/busybox:pulled"
    core = k8s_node.core
    core.create_namespaced_pod(node_namespace, _pod("probe", image, [
        "sh", "-c", f"if wget -T 5 -q -O- http://{registry.host}/v2/; then echo reached; exit 0; fi; "
                    "echo refused; exit 7"]))
    done = wait_for(lambda: _terminated(core, node_namespace, "probe"), 120, "the probe pod to finish")
    status = core.read_namespaced_pod("probe", node_namespace).status.container_statuses[0]
    assert status.image_id == f"{registry.host}/test/busybox@{pushed.digest}"  # pulled from the registry
    assert done.exit_code == 7, core.read_namespaced_pod_log("probe", node_namespace)
    assert urllib.request.urlopen(f"{node_registry}/v2/", timeout=5).status == 200  # this machine reaches it
