"""A runtime's usage on Kubernetes: CPU and memory per pod, restarts from the pods.

Two sources, in this order:
- the resource metrics API (metrics.k8s.io, served by metrics-server), what HPAs read too;
- where the cluster serves no such API, each node's kubelet summary API
  (`/api/v1/nodes/<node>/proxy/stats/summary`, through the API server's node proxy): the same
  figures metrics-server would have scraped (CPU as the kubelet's usageNanoCores, memory as the
  working set).
Without either the usage is "unavailable" with the reason, and the check's `features.metrics`
is false; the check's `metrics` says which source answered."""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from scheduler.base import NodeUsage, ReplicaUsage, RuntimeRef, RuntimeUsage, pass_memo
from scheduler.kubernetes.meta import SERVICE_LABEL

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
METRICS_API, KUBELET_SUMMARY = "metrics-api", "kubelet-summary"
SOURCES = {METRICS_API: "the resource metrics API (metrics.k8s.io)",
           KUBELET_SUMMARY: "the kubelets' summary API (/stats/summary through the API server's node proxy)"}
NO_METRICS = ("the cluster serves no resource metrics API (install metrics-server) and no kubelet's "
              "summary API answers through the node proxy")
# A kubelet that does not answer in this time is taken as not answering (kwok's nodes never do).
SUMMARY_TIMEOUT = 5
_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_SUFFIX = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
           "Ki": 1024.0, "Mi": 1024.0 ** 2, "Gi": 1024.0 ** 3, "Ti": 1024.0 ** 4}


class NoMetricsAPI(Exception):
    """The cluster serves no metrics.k8s.io (404, or 503 from an APIService whose server is down)."""


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


# ---- the kubelet summary API ---------------------------------------------------------------------


def _credentials(api: client.ApiClient) -> str:
    """Who asks, as a digest: a summary is shared only between callers with the same server and
    credentials (one cluster's runtimes), never lent to a client whose rights may differ."""
    cfg = api.configuration
    who = [cfg.host, cfg.api_key, cfg.username, cfg.cert_file, cfg.key_file]
    return hashlib.sha256(repr(who).encode()).hexdigest()


def summary(api: client.ApiClient, node: str) -> dict[str, Any] | None:
    """A node's kubelet summary (CPU and memory only), or None when its kubelet does not answer
    (a simulated node, a kubelet down, no rights on nodes/proxy). Fetched once per node and
    sampling pass (scheduler.base.sampling_pass): every runtime with pods on the node reads it."""
    return pass_memo(("kubelet-summary", _credentials(api), node), lambda: _fetch_summary(api, node))


def _fetch_summary(api: client.ApiClient, node: str) -> dict[str, Any] | None:
    try:
        request = api.param_serialize(
            "GET", "/api/v1/nodes/{name}/proxy/stats/summary", path_params={"name": node},
            query_params=[("only_cpu_and_memory", "true")], header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"])
        resp = api.call_api(*request, _request_timeout=SUMMARY_TIMEOUT)
        resp.read()
        if resp.status != 200:
            return None
        data = json.loads(resp.data)
    except Exception:  # any failure means "this kubelet cannot tell": the caller says so
        return None
    return data if isinstance(data, dict) else None


def _cpu_memory(stats: dict[str, Any] | None) -> tuple[float | None, int | None]:
    """(millicores, working-set bytes) of a summary's pod or node entry; None where not measured yet."""
    stats = stats or {}
    nano = (stats.get("cpu") or {}).get("usageNanoCores")
    working = (stats.get("memory") or {}).get("workingSetBytes")
    return (None if nano is None else float(nano) / 1e6), (None if working is None else int(working))


def summary_source(api: client.ApiClient, nodes: list[str] | None = None) -> str:
    """The first node (of `nodes`, else the cluster's) whose kubelet answers the summary API, or ""."""
    if nodes is None:
        try:
            nodes = [n.metadata.name for n in client.CoreV1Api(api).list_node(_request_timeout=10).items]
        except Exception:
            return ""
    for node in nodes[:3]:  # kubelets alike answer alike: a few tries tell
        if summary(api, node) is not None:
            return node
    return ""


def report(api: client.ApiClient) -> dict[str, str]:
    """Which source usage() reads on this cluster: {"source", "detail"} for the capability report."""
    if served(api):
        return {"source": METRICS_API, "detail": SOURCES[METRICS_API]}
    node = summary_source(api)
    if node:
        return {"source": KUBELET_SUMMARY, "detail": f"{SOURCES[KUBELET_SUMMARY]}; no metrics-server, so "
                "HorizontalPodAutoscalers cannot act: the console's own autoscaler scales autoscaled services"}
    return {"source": "", "detail": NO_METRICS}


# ---- a runtime's usage ----------------------------------------------------------------------------


def _metrics_api_pods(api: client.ApiClient, ns: str) -> dict[str, tuple[float, int]]:
    try:
        found = client.CustomObjectsApi(api).list_namespaced_custom_object(GROUP, VERSION, ns, "pods",
                                                                           label_selector=SERVICE_LABEL)
    except ApiException as exc:
        if exc.status in (404, 503):
            raise NoMetricsAPI() from None
        raise
    out = {}
    for item in found.get("items", []):
        containers = item.get("containers", [])
        out[item["metadata"]["name"]] = (
            sum(quantity(c["usage"].get("cpu", "0")) for c in containers) * 1000.0,
            int(sum(quantity(c["usage"].get("memory", "0")) for c in containers)))
    return out


def _summary_pods(api: client.ApiClient, ns: str, pods: list) -> tuple[dict[str, tuple[float | None, int | None]], list[str]]:
    """pod -> (millicores, bytes) from the summaries of the nodes the pods run on; and the nodes
    whose kubelets did not answer."""
    by_node: dict[str, list[str]] = defaultdict(list)
    for pod in pods:
        if pod.spec is not None and pod.spec.node_name:
            by_node[pod.spec.node_name].append(pod.metadata.name)
    out, silent = {}, []
    for node, names in sorted(by_node.items()):
        data = summary(api, node)
        if data is None:
            silent.append(node)
            continue
        wanted = set(names)
        for entry in data.get("pods") or []:
            ref = entry.get("podRef") or {}
            if ref.get("namespace") == ns and ref.get("name") in wanted:
                out[ref["name"]] = _cpu_memory(entry)
    return out, silent


def usage(api: client.ApiClient, runtime: RuntimeRef) -> RuntimeUsage:
    ns = runtime.namespace
    try:
        pods = client.CoreV1Api(api).list_namespaced_pod(ns, label_selector=SERVICE_LABEL).items
    except ApiException as exc:
        return RuntimeUsage(runtime=runtime, available=False, reason=f"listing pods: {exc.status} {exc.reason}")
    try:
        measured: dict[str, tuple[float | None, int | None]] = dict(_metrics_api_pods(api, ns))
        source = METRICS_API
    except NoMetricsAPI:
        measured, silent = _summary_pods(api, ns, pods)
        source = KUBELET_SUMMARY
        if silent and not measured:
            return RuntimeUsage(runtime=runtime, available=False,
                                reason=f"{NO_METRICS} (nodes {', '.join(silent)})")
        if not pods and not summary_source(api):  # nothing to measure: can anything be measured here?
            return RuntimeUsage(runtime=runtime, available=False, reason=NO_METRICS)
    except ApiException as exc:
        return RuntimeUsage(runtime=runtime, available=False, reason=f"metrics API: {exc.status} {exc.reason}")
    out = []
    for pod in pods:
        name = pod.metadata.name
        if name not in measured:
            continue  # not measured yet (just started, or its node does not answer)
        cpu, mem = measured[name]
        statuses = (pod.status.container_statuses or []) if pod.status else []
        out.append(ReplicaUsage(service=(pod.metadata.labels or {}).get(SERVICE_LABEL, ""), replica=name,
                                cpu_millicores=cpu, memory_bytes=mem,
                                restarts=sum(s.restart_count or 0 for s in statuses),
                                ready=bool(statuses) and all(s.ready for s in statuses)))
    return RuntimeUsage(runtime=runtime, available=True, source=source,
                        replicas=tuple(sorted(out, key=lambda r: r.replica)))


def node_usage(api: client.ApiClient) -> list[NodeUsage] | None:
    """Each node's CPU and memory from the resource metrics API, else from the kubelets' summaries
    (the nodes whose kubelet answers); None when neither can say."""
    try:
        found = client.CustomObjectsApi(api).list_cluster_custom_object(GROUP, VERSION, "nodes")
    except ApiException as exc:
        if exc.status not in (404, 503):
            return None
    else:
        return [NodeUsage(name=item["metadata"]["name"],
                          cpu_millicores=quantity(item["usage"].get("cpu", "0")) * 1000.0,
                          memory_bytes=int(quantity(item["usage"].get("memory", "0"))))
                for item in found.get("items", [])]
    try:
        nodes = [n.metadata.name for n in client.CoreV1Api(api).list_node(_request_timeout=10).items]
    except Exception:
        return None
    out, silent = [], 0
    for node in nodes:
        if silent >= 3 and not out:
            break  # kubelets alike answer alike: a cluster of simulated nodes is not asked node by node
        data = summary(api, node)
        if data is None:
            silent += 1
            continue
        cpu, mem = _cpu_memory(data.get("node"))
        out.append(NodeUsage(name=node, cpu_millicores=cpu, memory_bytes=mem))
    return out or None
