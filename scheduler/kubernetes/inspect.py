"""Inspecting a Kubernetes cluster: the capability report, the node and usage snapshot, node
labels and what the inspection looks at (KubernetesExecutor's inspect calls end here).

Takes an API client, returns plain dicts. Quantities are normalised to CPU millicores and memory
bytes.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity
from urllib3.exceptions import HTTPError

from scheduler.base import ExecutorUnavailable
from scheduler.kubernetes.catalog import OPERATORS

TIMEOUT = 10  # seconds per API call

# Resources the console creates or reads, and the verbs it needs on each: (group, resource, verbs).
REQUIRED_PERMISSIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("", "namespaces", ("get", "list", "create", "delete")),
    ("apps", "deployments", ("get", "list", "create", "patch", "delete")),
    ("apps", "statefulsets", ("get", "list", "create", "patch", "delete")),
    ("autoscaling", "horizontalpodautoscalers", ("get", "list", "create", "patch", "delete")),
    ("", "services", ("get", "list", "create", "patch", "delete")),
    ("networking.k8s.io", "ingresses", ("get", "list", "create", "patch", "delete")),
    ("batch", "jobs", ("get", "list", "create", "delete")),
    ("", "secrets", ("get", "list", "create", "patch", "delete")),
    ("", "persistentvolumeclaims", ("get", "list", "create", "delete")),
    ("", "pods", ("get", "list")),
    ("", "nodes", ("list", "patch")),
    # the kubelets' summary API through the API server's node proxy: usage where no metrics-server runs
    ("", "nodes/proxy", ("get",)),
)

DICE_LABELS = ("dice.io/org", "dice.io/project", "dice.io/app", "dice.io/workspace", "dice.io/runtime")


KubeError = ExecutorUnavailable  # the cluster could not be asked; the message is fit to show


def _describe(exc: Exception) -> str:
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status} {exc.reason}".strip()
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, _request_timeout=TIMEOUT, **kwargs)
    except ApiException:
        raise
    except (HTTPError, OSError, ValueError) as exc:
        raise KubeError(f"cannot reach the API server: {_describe(exc)}") from None


# ---- connectivity check -----------------------------------------------------------------------


def check(api: client.ApiClient) -> dict[str, Any]:
    """Server version, permissions and operators: a report with what is missing spelled out."""
    report: dict[str, Any] = {
        "reachable": False, "server_version": "", "error": "",
        "permissions": [], "missing_permissions": [], "operators": [], "missing_operators": [],
    }
    try:
        version = _call(client.VersionApi(api).get_code)
    except (KubeError, ApiException) as exc:
        report["error"] = _describe(exc) if isinstance(exc, ApiException) else str(exc)
        if isinstance(exc, ApiException) and exc.status in (401, 403):
            report["error"] = f"the API server refused the credentials ({_describe(exc)})"
        return report
    report["reachable"] = True
    report["server_version"] = version.git_version
    auth = client.AuthorizationV1Api(api)
    for group, resource, verbs in REQUIRED_PERMISSIONS:
        kind, _, subresource = resource.partition("/")  # "nodes/proxy": the proxy subresource of nodes
        for verb in verbs:
            body = client.V1SelfSubjectAccessReview(
                spec=client.V1SelfSubjectAccessReviewSpec(
                    resource_attributes=client.V1ResourceAttributes(group=group, resource=kind, verb=verb,
                                                                    subresource=subresource or None)
                )
            )
            try:
                allowed = bool(_call(auth.create_self_subject_access_review, body).status.allowed)
            except (KubeError, ApiException):
                allowed = False
            name = f"{resource}.{group}" if group else resource
            report["permissions"].append({"resource": name, "verb": verb, "allowed": allowed})
            if not allowed:
                report["missing_permissions"].append(f"{verb} {name}")
    try:
        crds = _call(client.ApiextensionsV1Api(api).list_custom_resource_definition)
        installed = {c.metadata.name for c in crds.items}
        crd_error = ""
    except (KubeError, ApiException) as exc:
        installed, crd_error = set(), f"cannot list CRDs: {_describe(exc)}"
    for key, operator in OPERATORS.items():
        # installed only when every CRD the renderer needs is there (None: the CRDs could not be listed)
        found = operator.installed(installed)
        report["operators"].append({
            "key": key, "label": operator.label, "makes": operator.makes, "crds": list(operator.crds),
            "crd": ", ".join(operator.crds), "missing_crds": operator.missing(installed) if not crd_error else [],
            "installed": found if not crd_error else None,
        })
        if not found:
            report["missing_operators"].append(operator.label)
    report["crd_error"] = crd_error
    return report


# ---- quantities ----------------------------------------------------------------------------


def cpu_m(value) -> int:
    return int(parse_quantity(str(value)) * 1000) if value not in (None, "") else 0


def mem_b(value) -> int:
    return int(parse_quantity(str(value))) if value not in (None, "") else 0


def _resources(mapping: dict | None) -> dict[str, int]:
    mapping = mapping or {}
    out = {"cpu": cpu_m(mapping.get("cpu")), "memory": mem_b(mapping.get("memory"))}
    if "pods" in mapping:
        out["pods"] = int(parse_quantity(str(mapping["pods"])))
    return out


def pod_resources(pod) -> tuple[dict[str, int], dict[str, int]]:
    """Effective requests and limits of a pod: sum of containers, at least the largest init container."""
    req, lim = {"cpu": 0, "memory": 0}, {"cpu": 0, "memory": 0}
    for c in pod.spec.containers or []:
        r = c.resources
        for key in ("cpu", "memory"):
            conv = cpu_m if key == "cpu" else mem_b
            req[key] += conv((r.requests or {}).get(key)) if r and r.requests else 0
            lim[key] += conv((r.limits or {}).get(key)) if r and r.limits else 0
    for c in pod.spec.init_containers or []:
        r = c.resources
        for key in ("cpu", "memory"):
            conv = cpu_m if key == "cpu" else mem_b
            if r and r.requests:
                req[key] = max(req[key], conv(r.requests.get(key)))
            if r and r.limits:
                lim[key] = max(lim[key], conv(r.limits.get(key)))
    return req, lim


def _active(pod) -> bool:
    return (pod.status.phase or "") not in ("Succeeded", "Failed")


def _conditions(node) -> list[dict]:
    return [
        {"type": c.type, "status": c.status, "reason": c.reason or "", "message": (c.message or "")[:300]}
        for c in node.status.conditions or []
    ]


def _dice_labels(labels: dict | None) -> dict[str, str]:
    return {k: v for k, v in (labels or {}).items() if k.startswith("dice.io/")}


def snapshot(api: client.ApiClient) -> dict[str, Any]:
    """What the sync records: nodes with requests, namespaces with usage and quota, dice workloads."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    try:
        nodes = _call(core.list_node).items
        pods = _call(core.list_pod_for_all_namespaces).items
        namespaces = _call(core.list_namespace).items
        quotas = _call(core.list_resource_quota_for_all_namespaces).items
        workloads = []
        for kind, fn in (("Deployment", apps.list_deployment_for_all_namespaces),
                         ("StatefulSet", apps.list_stateful_set_for_all_namespaces)):
            for w in _call(fn, label_selector="dice.io/runtime").items:
                workloads.append((kind, w))
    except ApiException as exc:
        raise KubeError(f"the API server refused the sync: {_describe(exc)}") from None

    node_req: dict[str, dict[str, int]] = defaultdict(lambda: {"cpu": 0, "memory": 0})
    node_lim: dict[str, dict[str, int]] = defaultdict(lambda: {"cpu": 0, "memory": 0})
    node_pods: dict[str, int] = defaultdict(int)
    ns_usage: dict[str, dict[str, Any]] = {}
    pod_rows = []
    for pod in pods:
        ns = pod.metadata.namespace
        usage = ns_usage.setdefault(ns, {"pods": 0, "cpu_requests": 0, "cpu_limits": 0,
                                         "mem_requests": 0, "mem_limits": 0, "labels": {}})
        labels = _dice_labels(pod.metadata.labels)
        if not _active(pod):
            continue
        req, lim = pod_resources(pod)
        usage["pods"] += 1
        usage["cpu_requests"] += req["cpu"]
        usage["cpu_limits"] += lim["cpu"]
        usage["mem_requests"] += req["memory"]
        usage["mem_limits"] += lim["memory"]
        for key in DICE_LABELS:
            if labels.get(key):
                usage["labels"].setdefault(key, labels[key])
        node = pod.spec.node_name
        if node:
            for key in ("cpu", "memory"):
                node_req[node][key] += req[key]
                node_lim[node][key] += lim[key]
            node_pods[node] += 1
        if labels.get("dice.io/runtime"):
            pod_rows.append({
                "namespace": ns, "name": pod.metadata.name, "node": node or "", "labels": labels,
                "phase": pod.status.phase or "",
                "images": sorted({c.image for c in pod.spec.containers or []}),
            })

    out_nodes = []
    for node in nodes:
        name = node.metadata.name
        addresses = {a.type: a.address for a in node.status.addresses or []}
        conditions = _conditions(node)
        out_nodes.append({
            "name": name,
            "capacity": _resources(node.status.capacity),
            "allocatable": _resources(node.status.allocatable),
            "requests": dict(node_req[name]),
            "limits": dict(node_lim[name]),
            "labels": dict(node.metadata.labels or {}),
            "conditions": conditions,
            "ready": any(c["type"] == "Ready" and c["status"] == "True" for c in conditions),
            "unschedulable": bool(node.spec.unschedulable),
            "pod_count": node_pods[name],
            "internal_ip": addresses.get("InternalIP", ""),
            "kubelet_version": (node.status.node_info.kubelet_version if node.status.node_info else "") or "",
        })

    ns_labels = {n.metadata.name: dict(n.metadata.labels or {}) for n in namespaces}
    quota_by_ns: dict[str, dict[str, dict]] = defaultdict(lambda: {"hard": {}, "used": {}})
    for q in quotas:
        entry = quota_by_ns[q.metadata.namespace]
        entry["hard"].update({k: str(v) for k, v in (q.status.hard or q.spec.hard or {}).items()})
        entry["used"].update({k: str(v) for k, v in (q.status.used or {}).items()})
    out_ns = []
    for name, labels in ns_labels.items():
        usage = ns_usage.get(name, {"pods": 0, "cpu_requests": 0, "cpu_limits": 0,
                                    "mem_requests": 0, "mem_limits": 0, "labels": {}})
        dice = {**usage["labels"], **_dice_labels(labels)}
        out_ns.append({
            "name": name, "labels": labels, "dice": dice,
            **{k: v for k, v in usage.items() if k != "labels"},
            "quota_hard": quota_by_ns[name]["hard"] if name in quota_by_ns else {},
            "quota_used": quota_by_ns[name]["used"] if name in quota_by_ns else {},
            "phase": next((n.status.phase for n in namespaces if n.metadata.name == name), ""),
        })

    out_workloads = []
    for kind, w in workloads:
        containers = w.spec.template.spec.containers or []
        out_workloads.append({
            "kind": kind, "namespace": w.metadata.namespace, "name": w.metadata.name,
            "labels": _dice_labels(w.metadata.labels),
            "replicas": w.spec.replicas if w.spec.replicas is not None else 1,
            "ready_replicas": (w.status.ready_replicas or 0) if w.status else 0,
            "images": sorted({c.image for c in containers}),
        })
    return {"nodes": out_nodes, "namespaces": out_ns, "pods": pod_rows, "workloads": out_workloads}


# ---- node labels ----------------------------------------------------------------------------


def set_node_labels(api: client.ApiClient, node: str, labels: dict[str, str | None]) -> dict[str, str]:
    """Patch the node's labels (None removes one); returns the node's labels afterwards."""
    try:
        result = _call(client.CoreV1Api(api).patch_node, node, {"metadata": {"labels": labels}})
    except ApiException as exc:
        raise KubeError(f"cannot label node {node}: {_describe(exc)}") from None
    return dict(result.metadata.labels or {})


# ---- inspection data ------------------------------------------------------------------------


def inspection_data(api: client.ApiClient) -> dict[str, Any]:
    """What the inspection looks at, live: nodes, pods, TLS secrets (expiry only), PVCs, quotas."""
    core = client.CoreV1Api(api)
    try:
        nodes = _call(core.list_node).items
        pods = _call(core.list_pod_for_all_namespaces).items
        secrets = _call(core.list_secret_for_all_namespaces, field_selector="type=kubernetes.io/tls").items
        pvcs = _call(core.list_persistent_volume_claim_for_all_namespaces).items
        quotas = _call(core.list_resource_quota_for_all_namespaces).items
        namespaces = {n.metadata.name: dict(n.metadata.labels or {}) for n in _call(core.list_namespace).items}
    except ApiException as exc:
        raise KubeError(f"the API server refused the inspection: {_describe(exc)}") from None
    now = datetime.datetime.now(datetime.UTC)
    out: dict[str, Any] = {"now": now.isoformat(), "namespaces": namespaces, "nodes": [], "pods": [],
                           "certificates": [], "pvcs": [], "quotas": []}
    for node in nodes:
        out["nodes"].append({"name": node.metadata.name, "conditions": _conditions(node),
                             "unschedulable": bool(node.spec.unschedulable)})
    for pod in pods:
        waiting = []
        restarts = 0
        for cs in pod.status.container_statuses or []:
            restarts += cs.restart_count or 0
            if cs.state and cs.state.waiting and cs.state.waiting.reason:
                waiting.append(cs.state.waiting.reason)
        created = pod.metadata.creation_timestamp
        out["pods"].append({
            "namespace": pod.metadata.namespace, "name": pod.metadata.name, "phase": pod.status.phase or "",
            "waiting": waiting, "restarts": restarts, "labels": _dice_labels(pod.metadata.labels),
            "age_seconds": (now - created).total_seconds() if created else 0,
            "reason": next((c.message or c.reason or "" for c in pod.status.conditions or []
                            if c.type == "PodScheduled" and c.status == "False"), ""),
        })
    for s in secrets:
        out["certificates"].append({"namespace": s.metadata.namespace, "name": s.metadata.name,
                                    **_certificate_expiry((s.data or {}).get("tls.crt"))})
    for pvc in pvcs:
        out["pvcs"].append({
            "namespace": pvc.metadata.namespace, "name": pvc.metadata.name,
            "capacity": mem_b((pvc.status.capacity or {}).get("storage")) if pvc.status else 0,
            "phase": pvc.status.phase if pvc.status else "",
        })
    out["volume_stats"] = _volume_stats(core, [n.metadata.name for n in nodes]) if pvcs else {}
    for q in quotas:
        out["quotas"].append({"namespace": q.metadata.namespace, "name": q.metadata.name,
                              "hard": {k: str(v) for k, v in (q.status.hard or {}).items()},
                              "used": {k: str(v) for k, v in (q.status.used or {}).items()}})
    return out


def _certificate_expiry(data_b64: str | None) -> dict[str, Any]:
    import base64

    from cryptography import x509

    if not data_b64:
        return {"not_after": None, "error": "no tls.crt"}
    try:
        cert = x509.load_pem_x509_certificate(base64.b64decode(data_b64))
    except Exception as exc:  # a secret with garbage in it is a finding, not a crash
        return {"not_after": None, "error": f"tls.crt is not a PEM certificate ({type(exc).__name__})"}
    return {"not_after": cert.not_valid_after_utc.isoformat(), "error": "",
            "subject": cert.subject.rfc4514_string()[:200]}


def _volume_stats(core, nodes: list[str]) -> dict[str, dict[str, int]]:
    """PVC usage from the kubelets' /stats/summary; {} when no kubelet answers (kwok, no proxy rights)."""
    stats: dict[str, dict[str, int]] = {}
    for node in nodes:
        try:
            resp = core.connect_get_node_proxy_with_path(
                node, "stats/summary", _request_timeout=3, _preload_content=False)
        except Exception:
            return stats  # one kubelet that does not answer: the others most likely do not either
        try:
            import json

            data = json.loads(resp.data)
            for pod in data.get("pods", []):
                for vol in pod.get("volume", []):
                    ref = vol.get("pvcRef")
                    if ref and vol.get("capacityBytes"):
                        stats[f"{ref['namespace']}/{ref['name']}"] = {
                            "used": vol.get("usedBytes", 0), "capacity": vol["capacityBytes"]}
        except (ValueError, AttributeError, TypeError):
            continue
    return stats
