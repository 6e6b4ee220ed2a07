"""The periodic sync: what a cluster has now goes into Node and NamespaceUsage rows and the CMDB."""

from __future__ import annotations

from collections import defaultdict

from django.db import transaction
from django.utils import timezone

from apps.clusters.models import Cluster, NamespaceUsage, Node
from apps.clusters.services import capabilities, cluster_inspector
from apps.cmdb import services as cmdb
from apps.cmdb.choices import ItemKind, RelationKind


def sync_cluster(cluster: Cluster) -> dict:
    """Record the cluster's nodes, namespaces and dice workloads; returns counts. Idempotent."""
    source = f"sync:{cluster.name}"
    try:
        snap = cluster_inspector(cluster).snapshot()
    except Exception as exc:  # recorded on the cluster and shown on its page
        Cluster.objects.filter(pk=cluster.pk).update(sync_error=str(exc)[:2000])
        cluster.sync_error = str(exc)
        raise
    now = timezone.now()
    with transaction.atomic():
        _store_nodes(cluster, snap["nodes"], now)
        _store_namespaces(cluster, snap["namespaces"], now)
        Cluster.objects.filter(pk=cluster.pk).update(synced_at=now, sync_error="")
        cluster.synced_at, cluster.sync_error = now, ""
    _record_cmdb(cluster, snap, source)
    return {"nodes": len(snap["nodes"]), "namespaces": len(snap["namespaces"]),
            "workloads": len(snap["workloads"]), "pods": len(snap["pods"])}


def _store_nodes(cluster: Cluster, nodes: list[dict], now) -> None:
    fields = ("capacity", "allocatable", "requests", "limits", "labels", "conditions", "ready",
              "unschedulable", "pod_count", "internal_ip", "kubelet_version")
    kept = {}
    if not capabilities(cluster).node_labels:  # the cluster keeps none: dice/ labels live only here
        kept = {n.name: {k: v for k, v in n.labels.items() if k.startswith("dice/")} for n in cluster.nodes.all()}
    for data in nodes:
        data = {**data, "labels": {**data["labels"], **kept.get(data["name"], {})}}
        Node.objects.update_or_create(
            cluster=cluster, name=data["name"], defaults={**{f: data[f] for f in fields}, "synced_at": now}
        )
    cluster.nodes.exclude(name__in=[n["name"] for n in nodes]).delete()


def _store_namespaces(cluster: Cluster, namespaces: list[dict], now) -> None:
    for ns in namespaces:
        dice = ns["dice"]
        NamespaceUsage.objects.update_or_create(cluster=cluster, namespace=ns["name"], defaults={
            "org": dice.get("dice.io/org", ""), "project": dice.get("dice.io/project", ""),
            "app": dice.get("dice.io/app", ""), "workspace": dice.get("dice.io/workspace", "").upper(),
            "runtime": dice.get("dice.io/runtime", ""), "pods": ns["pods"],
            "cpu_requests": ns["cpu_requests"], "cpu_limits": ns["cpu_limits"],
            "mem_requests": ns["mem_requests"], "mem_limits": ns["mem_limits"],
            "quota_hard": ns["quota_hard"], "quota_used": ns["quota_used"], "synced_at": now,
        })
    cluster.namespace_usage.exclude(namespace__in=[n["name"] for n in namespaces]).delete()


# ---- the CMDB ------------------------------------------------------------------------------------


def _runtime_of(labels: dict) -> str:
    return cmdb.runtime_key(labels.get("dice.io/org", ""), labels.get("dice.io/project", ""),
                            labels.get("dice.io/app", ""), labels.get("dice.io/workspace", ""),
                            labels.get("dice.io/runtime", ""))


def _record_cmdb(cluster: Cluster, snap: dict, source: str) -> None:
    orgs = cmdb.OrgIndex()
    node_kind = ItemKind.HOST if capabilities(cluster).hosts else ItemKind.NODE
    cluster_item = cmdb.record_item(ItemKind.CLUSTER, cluster.name, {
        "kind": cluster.kind, "api_server": cluster.api_server, "server_version": cluster.server_version,
        "wildcard_domain": cluster.wildcard_domain, "nodes": len(snap["nodes"]),
    }, source, name=cluster.name, cluster=cluster)

    node_items = {}
    for n in snap["nodes"]:
        key = cmdb.node_key(cluster.name, n["name"])
        node_items[n["name"]] = cmdb.record_item(node_kind, key, {
            "capacity": n["capacity"], "allocatable": n["allocatable"], "labels": n["labels"],
            "ready": n["ready"], "unschedulable": n["unschedulable"], "internal_ip": n["internal_ip"],
            "kubelet_version": n["kubelet_version"],
        }, source, name=n["name"], cluster=cluster, relations=[(RelationKind.BELONGS_TO, cluster_item)])
    cmdb.mark_absent(node_kind, [cmdb.node_key(cluster.name, n) for n in node_items], source, cluster=cluster)

    ns_items = {}
    for ns in snap["namespaces"]:
        org_label = ns["dice"].get("dice.io/org", "")
        ns_items[ns["name"]] = cmdb.record_item(
            ItemKind.NAMESPACE, cmdb.namespace_key(cluster.name, ns["name"]),
            {"labels": ns["labels"], "phase": ns.get("phase", "")}, source,
            name=ns["name"], cluster=cluster, organization=orgs.get(org_label), org_slug=org_label,
            relations=[(RelationKind.BELONGS_TO, cluster_item)],
        )
    cmdb.mark_absent(ItemKind.NAMESPACE, [cmdb.namespace_key(cluster.name, n) for n in ns_items], source,
                     cluster=cluster)

    # Runtimes, their services and addons: from workloads (replicas, images) and pods (placement).
    runtimes: dict[str, dict] = {}
    services: dict[str, dict] = {}
    addons: dict[str, dict] = {}
    placement: dict[str, set[str]] = defaultdict(set)

    def runtime(labels: dict, namespace: str) -> dict:
        key = _runtime_of(labels)
        return runtimes.setdefault(key, {"labels": labels, "namespace": namespace, "services": {}, "addons": []})

    for w in snap["workloads"]:
        labels = w["labels"]
        rt_key = _runtime_of(labels)
        rt = runtime(labels, w["namespace"])
        if labels.get("dice.io/addon"):
            key = cmdb.child_key(rt_key, labels["dice.io/addon"])
            addons[key] = {"runtime": rt_key, "labels": labels, "name": labels["dice.io/addon"],
                           "attributes": {"workload": f"{w['kind']}/{w['name']}", "replicas": w["replicas"],
                                          "images": w["images"], "namespace": w["namespace"]}}
            rt["addons"].append(labels["dice.io/addon"])
        else:
            name = labels.get("dice.io/service") or w["name"]
            key = cmdb.child_key(rt_key, name)
            services[key] = {"runtime": rt_key, "labels": labels, "name": name,
                             "attributes": {"workload": f"{w['kind']}/{w['name']}", "replicas": w["replicas"],
                                            "images": w["images"], "namespace": w["namespace"]}}
            rt["services"][name] = w["replicas"]
    for pod in snap["pods"]:
        labels = pod["labels"]
        rt_key = _runtime_of(labels)
        runtime(labels, pod["namespace"])
        if not pod["node"]:
            continue
        placement[rt_key].add(pod["node"])
        child = labels.get("dice.io/addon") or labels.get("dice.io/service")
        if child:
            placement[cmdb.child_key(rt_key, child)].add(pod["node"])

    def runs_on(key: str) -> list:
        return [(RelationKind.RUNS_ON, node_items[n]) for n in sorted(placement.get(key, ())) if n in node_items]

    for key, a in addons.items():
        org_label = a["labels"].get("dice.io/org", "")
        addons[key]["item"] = cmdb.record_item(
            ItemKind.ADDON, key, a["attributes"], source, name=a["name"], cluster=cluster,
            organization=orgs.get(org_label), org_slug=org_label, relations=runs_on(key),
            keep=cmdb.DEPLOY_KEYS, keep_relations=(RelationKind.BELONGS_TO,))
    for key, rt in runtimes.items():
        labels = rt["labels"]
        org_label = labels.get("dice.io/org", "")
        relations = [*runs_on(key)]
        if rt["namespace"] in ns_items:
            relations.append((RelationKind.BELONGS_TO, ns_items[rt["namespace"]]))
        relations += [(RelationKind.USES_ADDON, a["item"]) for a in addons.values() if a["runtime"] == key]
        rt["item"] = cmdb.record_item(ItemKind.RUNTIME, key, {
            "org": org_label, "project": labels.get("dice.io/project", ""), "app": labels.get("dice.io/app", ""),
            "workspace": labels.get("dice.io/workspace", "").upper(), "runtime": labels.get("dice.io/runtime", ""),
            "cluster": cluster.name, "namespace": rt["namespace"],
            "services": dict(sorted(rt["services"].items())), "addons": sorted(set(rt["addons"])),
        }, source, name=f"{labels.get('dice.io/app', '')}/{labels.get('dice.io/workspace', '')}/"
                        f"{labels.get('dice.io/runtime', '')}",
            cluster=cluster, organization=orgs.get(org_label), org_slug=org_label, relations=relations,
            keep=cmdb.DEPLOY_KEYS, keep_relations=(RelationKind.DEPENDS_ON,))
    for key, s in services.items():
        org_label = s["labels"].get("dice.io/org", "")
        cmdb.record_item(ItemKind.SERVICE, key, s["attributes"], source, name=s["name"], cluster=cluster,
                         organization=orgs.get(org_label), org_slug=org_label,
                         relations=[(RelationKind.BELONGS_TO, runtimes[s["runtime"]]["item"]), *runs_on(key)],
                         keep=cmdb.DEPLOY_KEYS, keep_relations=(RelationKind.DEPENDS_ON,))
    if not capabilities(cluster).workloads:
        return  # the snapshot lists no workloads: the runtimes come from deploys only
    cmdb.mark_absent(ItemKind.RUNTIME, runtimes, source, cluster=cluster)
    cmdb.mark_absent(ItemKind.SERVICE, services, source, cluster=cluster)
    cmdb.mark_absent(ItemKind.ADDON, addons, source, cluster=cluster)
