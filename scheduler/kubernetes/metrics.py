"""A runtime's usage on Kubernetes from the resource metrics API (metrics.k8s.io, served by
metrics-server): CPU and memory per pod, restarts from the pods. Without the API the usage is
"unavailable" with the reason, and the check's `features.metrics` is false."""

from __future__ import annotations

import re

from kubernetes import client
from kubernetes.client.rest import ApiException

from scheduler.base import NodeUsage, ReplicaUsage, RuntimeRef, RuntimeUsage
from scheduler.kubernetes.meta import SERVICE_LABEL

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_SUFFIX = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
           "Ki": 1024.0, "Mi": 1024.0 ** 2, "Gi": 1024.0 ** 3, "Ti": 1024.0 ** 4}


def quantity(text: str) -> float:
    """A Kubernetes quantity as a number ("250m" -> 0.25, "64Mi" -> 67108864)."""
    match = _QUANTITY.match(str(text).strip())
    if not match or match.group(2) not in _SUFFIX:
        raise ValueError(f"not a quantity: {text!r}")
    return float(match.group(1)) * _SUFFIX[match.group(2)]


def served(api: client.ApiClient) -> bool:
    """Whether the cluster serves the resource metrics API."""
    try:
        groups = client.ApisApi(api).get_api_versions().groups or []
    except Exception:
        return False
    return any(g.name == GROUP for g in groups)


def usage(api: client.ApiClient, runtime: RuntimeRef) -> RuntimeUsage:
    ns = runtime.namespace
    try:
        found = client.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, ns, "pods",
                                                                           label_selector=SERVICE_LABEL)
    except ApiException as exc:
        if exc.status in (404, 503):
            return RuntimeUsage(runtime=runtime, available=False,
                                reason="the cluster serves no resource metrics API (install metrics-server)")
        return RuntimeUsage(runtime=runtime, available=False, reason=f"metrics API: {exc.status} {exc.reason}")
    pods = {p.metadata.name: p for p in client.CoreV1Api(api).list_namespaced_pod(
        ns, label_selector=SERVICE_LABEL).items}
    out = []
    for item in found.get("items", []):
        name = item["metadata"]["name"]
        pod = pods.get(name)
        labels = item["metadata"].get("labels") or (pod.metadata.labels if pod is not None else None) or {}
        service = labels.get(SERVICE_LABEL, "")
        cpu = sum(quantity(c["usage"].get("cpu", "0")) for c in item.get("containers", [])) * 1000.0
        mem = int(sum(quantity(c["usage"].get("memory", "0")) for c in item.get("containers", [])))
        statuses = (pod.status.container_statuses or []) if pod is not None and pod.status else []
        out.append(ReplicaUsage(service=service, replica=name, cpu_millicores=cpu, memory_bytes=mem,
                                restarts=sum(s.restart_count or 0 for s in statuses),
                                ready=bool(statuses) and all(s.ready for s in statuses)))
    return RuntimeUsage(runtime=runtime, available=True, replicas=tuple(sorted(out, key=lambda r: r.replica)))


def node_usage(api: client.ApiClient) -> list[NodeUsage] | None:
    """Each node's CPU and memory from the resource metrics API; None without it."""
    try:
        found = client.CustomObjectsApi(api).list_cluster_custom_object(GROUP, VERSION, "nodes")
    except ApiException:
        return None
    return [NodeUsage(name=item["metadata"]["name"], cpu_millicores=quantity(item["usage"].get("cpu", "0")) * 1000.0,
                      memory_bytes=int(quantity(item["usage"].get("memory", "0")))) for item in found.get("items", [])]
