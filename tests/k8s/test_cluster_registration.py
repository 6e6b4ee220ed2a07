"""Registering the ktestenv cluster (UI upload and API), the connectivity check, the sync into the
database and the CMDB, node labels written to the real node, and runtime history across syncs."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from apps.clusters import services
from apps.clusters.inspection import inspect_cluster
from apps.clusters.models import Cluster, NamespaceUsage
from apps.clusters.sync import sync_cluster
from apps.cmdb import services as cmdb
from apps.cmdb.models import ConfigurationItem
from scheduler.base import RuntimeRef

from .conftest import NODE_NAMES, K8sCluster, wait_for

pytestmark = pytest.mark.k8s

WAIT = 60


def _register(tenant, k8s: K8sCluster, name: str = "kt") -> Cluster:
    return services.register_cluster(tenant.owner, name=name, kubeconfig=Path(k8s.kubeconfig).read_text())


def test_register_through_the_upload_form(tenant_a, k8s_cluster: K8sCluster):
    client = tenant_a.browser_client()
    ratios = {f"{ws}_{r}_ratio": "1" for ws in ("DEV", "TEST", "STAGING", "PROD") for r in ("cpu", "mem")}
    text = Path(k8s_cluster.kubeconfig).read_bytes()
    r = client.post(reverse("clusters:cluster_add"), {
        "name": "kt-ui", "kubeconfig_file": SimpleUploadedFile("kubeconfig", text), "context": "ktestenv",
        "wildcard_domain": "apps.kt.example", **ratios})
    assert r.status_code == 302, r.content.decode()[:2000]
    cluster = Cluster.objects.get(name="kt-ui")
    assert cluster.check_status == "ok", cluster.check_report
    assert cluster.server_version.startswith("v1.")
    assert cluster.api_server == k8s_cluster.server
    page = client.get(cluster.get_absolute_url()).content.decode()
    assert cluster.server_version in page and "Every permission the console needs is granted" in page
    assert "CloudNativePG" in page and "Not installed" in page
    assert "client-key-data" not in page


def test_register_through_the_api_and_check(tenant_a, k8s_cluster: K8sCluster):
    api = tenant_a.api()
    r = api.post("/api/clusters/", {"name": "kt-api", "kubeconfig": Path(k8s_cluster.kubeconfig).read_text()},
                 format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["check_status"] == "ok" and body["server_version"].startswith("v1.")
    report = api.post("/api/clusters/kt-api/check/").json()
    assert report["reachable"] and report["missing_permissions"] == []
    missing = set(report["missing_operators"])
    assert {"CloudNativePG (PostgreSQL)", "MySQL InnoDBCluster", "Strimzi (Kafka)",
            "OpenKruise BroadcastJob"} <= missing
    assert report["server_version"] == body["server_version"]


def test_token_registration_reports_missing_permissions(tenant_a, k8s_cluster: K8sCluster, k8s_namespace: str):
    """A ServiceAccount with no RBAC: reachable, but every needed permission is reported missing."""
    core = k8s_cluster.core
    core.create_namespaced_service_account(k8s_namespace, {"metadata": {"name": "dice"}})
    token = core.create_namespaced_service_account_token(
        "dice", k8s_namespace, {"spec": {"expirationSeconds": 3600}}).status.token
    kc = yaml.safe_load(Path(k8s_cluster.kubeconfig).read_text())
    ca = base64.b64decode(kc["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    r = tenant_a.api().post("/api/clusters/", {"name": "kt-sa", "server": k8s_cluster.server, "ca": ca,
                                               "token": token}, format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert token not in r.content.decode()
    assert body["check_status"] == "warning"
    report = body["check_report"]
    assert "create deployments.apps" in report["missing_permissions"]
    assert "patch nodes" in report["missing_permissions"]
    assert "get nodes/proxy" in report["missing_permissions"]  # the kubelets' summary API (usage)
    assert report["crd_error"].startswith("cannot list CRDs")
    page = tenant_a.browser_client().get("/clusters/kt-sa/").content.decode()
    assert "Missing permissions:" in page and "create deployments.apps" in page


def test_sync_records_nodes_in_the_database_and_the_cmdb(tenant_a, k8s_cluster: K8sCluster):
    cluster = _register(tenant_a, k8s_cluster)
    counts = sync_cluster(cluster)
    assert counts["nodes"] >= 2
    nodes = {n.name: n for n in cluster.nodes.all()}
    assert set(NODE_NAMES) <= set(nodes)
    node = nodes[NODE_NAMES[0]]
    assert node.ready and node.allocatable["cpu"] > 0 and node.allocatable["memory"] > 0
    assert node.labels["type"] == "kwok"
    item = ConfigurationItem.objects.get(kind="node", key=cmdb.node_key(cluster.name, NODE_NAMES[0]))
    assert item.relations_out.get().target.key == cluster.name
    assert ConfigurationItem.objects.filter(kind="namespace", cluster=cluster, name="default").exists()
    r = tenant_a.api().get(f"/api/clusters/{cluster.name}/nodes/")
    assert {n["name"] for n in r.json()["results"]} >= set(NODE_NAMES)  # a paginated list
    assert sync_cluster(cluster)["nodes"] == counts["nodes"]  # idempotent
    page = tenant_a.browser_client().get(cluster.get_absolute_url()).content.decode()
    assert f'id="node-{NODE_NAMES[0]}"' in page and "CPU requested" in page


def test_node_label_edit_patches_the_real_node(tenant_a, k8s_cluster: K8sCluster):
    cluster = _register(tenant_a, k8s_cluster)
    sync_cluster(cluster)
    name = NODE_NAMES[1]
    api = tenant_a.api()
    try:
        r = api.put(f"/api/clusters/{cluster.name}/nodes/{name}/labels/",
                    {"labels": ["dice/job", "dice/workspace-prod"]}, format="json")
        assert r.status_code == 200, r.content
        labels = k8s_cluster.core.read_node(name).metadata.labels
        assert labels["dice/job"] == "true" and labels["dice/workspace-prod"] == "true"
        assert labels["type"] == "kwok"  # other labels untouched
        assert services.node_selector_for(cluster, "PROD", "job") == {
            "dice/workspace-prod": "true", "dice/job": "true"}
        # The page form: keep only dice/job.
        node = cluster.nodes.get(name=name)
        r = tenant_a.browser_client().post(reverse("clusters:node_labels", args=[cluster.name, name]),
                                           {f"n{node.pk}-roles": ["dice/job"]})
        assert r.status_code == 302
        labels = k8s_cluster.core.read_node(name).metadata.labels
        assert labels.get("dice/job") == "true" and "dice/workspace-prod" not in labels
    finally:
        k8s_cluster.core.patch_node(name, {"metadata": {"labels": {"dice/job": None, "dice/workspace-prod": None}}})


def test_runtime_pods_relate_to_nodes_and_changes_show_in_history(tenant_a, k8s_cluster: K8sCluster,
                                                                   k8s_namespace: str):
    cluster = _register(tenant_a, k8s_cluster)
    ref = RuntimeRef(tenant_a.org.slug, tenant_a.project.slug, tenant_a.app.slug, "PROD", "main")
    labels = {**ref.labels(), "dice.io/service": "web"}
    ns, apps = k8s_namespace, k8s_cluster.apps
    k8s_cluster.core.patch_namespace(ns, {"metadata": {"labels": ref.labels()}})
    apps.create_namespaced_deployment(ns, {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"dice.io/service": "web"}},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                     "name": "web", "image": "registry.invalid/shop/web:1",
                     "resources": {"requests": {"cpu": "250m", "memory": "128Mi"},
                                   "limits": {"cpu": "500m", "memory": "256Mi"}}}]}}},
    })

    def ready(n):
        return wait_for(lambda: (apps.read_namespaced_deployment_status("web", ns).status.ready_replicas or 0) == n,
                        WAIT, f"{n} ready replica(s) of web")

    ready(1)
    sync_cluster(cluster)
    key = cmdb.runtime_key(ref.org, ref.project, ref.app, ref.workspace, ref.name)
    runtime = ConfigurationItem.objects.get(kind="runtime", key=key)
    assert runtime.organization == tenant_a.org
    assert runtime.attributes["services"] == {"web": 1} and runtime.attributes["namespace"] == ns
    pod_node = k8s_cluster.core.list_namespaced_pod(ns).items[0].spec.node_name
    runs_on = {r.target.name for r in runtime.relations_out.filter(kind="runs-on")}
    assert runs_on == {pod_node}
    belongs = runtime.relations_out.get(kind="belongs-to").target
    assert (belongs.kind, belongs.name, belongs.organization) == ("namespace", ns, tenant_a.org)
    service = ConfigurationItem.objects.get(kind="service", key=cmdb.child_key(key, "web"))
    assert service.attributes["replicas"] == 1 and service.attributes["images"] == ["registry.invalid/shop/web:1"]
    usage = NamespaceUsage.objects.get(cluster=cluster, namespace=ns)
    assert (usage.project, usage.workspace, usage.cpu_requests, usage.mem_limits) == (
        ref.project, "PROD", 250, 256 * 1024 ** 2)
    # The org's members see it; another org's do not.
    api = tenant_a.api()
    assert api.get(f"/api/cmdb/items/{runtime.pk}/").status_code == 200

    apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 2}})
    ready(2)
    sync_cluster(cluster)
    runtime.refresh_from_db()
    change = runtime.changes.first()
    assert change.action == "updated" and change.diff["services.web"] == {"old": 1, "new": 2}
    assert change.source == f"sync:{cluster.name}"
    history = api.get(f"/api/cmdb/items/{service.pk}/history/").json()["results"]
    assert history[0]["diff"]["replicas"] == {"old": 1, "new": 2}
    report = api.get("/api/reports/resources/", {"project": tenant_a.project.pk, "cluster": cluster.name}).json()
    assert report["count"] == 0  # the workspace is bound to `local`; bind it and the usage counts
    from apps.projects import services as project_services

    project_services.update_workspace(tenant_a.owner, tenant_a.project.workspaces.get(kind="PROD"), cluster=cluster)
    rows = api.get("/api/reports/resources/", {"project": tenant_a.project.pk, "workspace": "PROD"}).json()["results"]
    assert rows[0]["requested"]["cpu"] == 0.5 and rows[0]["pods"] == 2


def test_inspection_against_the_real_cluster(tenant_a, k8s_cluster: K8sCluster, k8s_namespace: str):
    cluster = _register(tenant_a, k8s_cluster)
    k8s_cluster.core.create_namespaced_persistent_volume_claim(k8s_namespace, {
        "metadata": {"name": f"data-{uuid.uuid4().hex[:4]}"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    report = inspect_cluster(cluster)
    assert report.error == ""
    pvc = [f for f in report.findings if f["check"] == "pvc_usage" and f["namespace"] == k8s_namespace]
    assert pvc and pvc[0]["severity"] == "unknown"
    assert not [f for f in report.findings if f["check"] == "node_not_ready"]
    r = tenant_a.browser_client().get(reverse("clusters:inspection", args=[cluster.name]))
    assert r.status_code == 200 and "usage unknown" in r.content.decode()
