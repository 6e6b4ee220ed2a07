"""What the engine boundary must carry on a real control plane (tools/ktestenv, kwok nodes), through
the console: node labels set on the cluster page become node selectors; operator-backed addons are
judged from their custom resource's status (written here as the operator would); an addon that
started built-in keeps working when the operator's CRD appears later; `broadcast: true` without
OpenKruise runs as a DaemonSet; an Ingress's URL shows in `runtime status` (API, page, CLI)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from apps.clusters import services as clusters
from apps.clusters.models import Node
from apps.clusters.sync import sync_cluster
from apps.deploy import deployments
from apps.deploy.executors import runtime_ref
from apps.deploy.models import Deployment
from apps.deploy.services import create_release
from apps.deploy.tasks import run_deployment
from apps.projects import services as projects
from tests.conftest import DATA, SHARED_CRDS

from .conftest import NODE_NAMES, K8sCluster, wait_for

pytestmark = [pytest.mark.k8s, pytest.mark.django_db(transaction=True)]

CNPG = "clusters.postgresql.cnpg.io"
KRUISE = "broadcastjobs.apps.kruise.io"
# Our minimal CNPG CRD (tests/data/crds), and in the conformance tier the operator's real one.
CNPG_FILES = [DATA / "crds" / "cnpg.yaml",
              pytest.param(SHARED_CRDS / "cloudnative-pg" / "postgresql.cnpg.io_clusters.yaml",
                           marks=pytest.mark.conformance)]
STORAGE_CLASS = "dice-kwok-boundary"


@pytest.fixture
def bound(tenant_a, k8s_cluster: K8sCluster, settings):
    settings.DICE_DEPLOY_TIMEOUT = 90
    settings.DICE_DEPLOY_DEGRADED_GRACE = 30
    cluster = clusters.register_cluster(
        tenant_a.owner, name=f"kt-{uuid.uuid4().hex[:6]}", kubeconfig=Path(k8s_cluster.kubeconfig).read_text(),
        wildcard_domain="apps.boundary.test", storage_class=STORAGE_CLASS,
    )
    projects.update_workspace(tenant_a.owner, tenant_a.project.workspaces.get(kind="DEV"), cluster=cluster)
    return cluster


def _crd_installed(k8s_cluster: K8sCluster, name: str) -> bool:
    try:
        k8s_cluster.apiextensions.read_custom_resource_definition(name)
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


def install_crd(k8s_cluster: K8sCluster, path: Path) -> str:
    """Install the CRD of the file (replacing another version of it); returns its name."""
    (doc,) = [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "CustomResourceDefinition"]
    name = doc["metadata"]["name"]
    remove_crd(k8s_cluster, name)
    k8s_cluster.apiextensions.create_custom_resource_definition(doc)

    def served():
        found = k8s_cluster.apiextensions.read_custom_resource_definition(name)
        return any(c.type == "Established" and c.status == "True" for c in found.status.conditions or [])

    wait_for(served, 60, f"CRD {name} to be served")
    return name


def remove_crd(k8s_cluster: K8sCluster, name: str) -> None:
    with contextlib.suppress(ApiException):
        k8s_cluster.apiextensions.delete_custom_resource_definition(name)
    wait_for(lambda: not _crd_installed(k8s_cluster, name), 60, f"CRD {name} to be gone")


@pytest.fixture
def crds(k8s_cluster: K8sCluster):
    """install(path) / remove(name) for the test; whatever it installed is removed afterwards, so
    the session's other tests find the cluster as they expect (each installs what it needs)."""
    installed: list[str] = []

    class Crds:
        @staticmethod
        def install(path: Path) -> None:
            installed.append(install_crd(k8s_cluster, path))

        @staticmethod
        def remove(name: str) -> None:
            remove_crd(k8s_cluster, name)

    yield Crds
    for name in installed:
        remove_crd(k8s_cluster, name)


def volumes(k8s_cluster: K8sCluster, count: int) -> None:
    """Static PersistentVolumes for the built-in addons' claims (kwok has no provisioner)."""
    for _ in range(count):
        k8s_cluster.core.create_persistent_volume({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": f"boundary-{uuid.uuid4().hex[:10]}"},
            "spec": {"capacity": {"storage": "500Gi"}, "accessModes": ["ReadWriteOnce"],
                     "storageClassName": STORAGE_CLASS, "hostPath": {"path": "/tmp/dice-kwok"}},
        })


def app_path(tenant) -> str:
    return f"{tenant.org.slug}/{tenant.project.slug}/{tenant.app.slug}"


def deploy(tenant, text: str, runtime: str = "main"):
    """Deploy onto DEV/<runtime>; each test uses runtimes of its own names, as a deleted runtime's
    namespace takes a while to go."""
    release = create_release(tenant.owner, tenant.app, spec_text=text)
    return deployments.deploy(tenant.owner, tenant.app, "DEV", release=release, runtime_name=runtime)


def fresh(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:4]}"


def rollout_in_thread(deployment_id: int) -> tuple[threading.Thread, dict]:
    """The rollout task as a worker runs it, in a thread of its own."""
    from django.db import connection

    out: dict = {}

    def work():
        try:
            out.update(run_deployment(deployment_id))
        finally:
            connection.close()

    thread = threading.Thread(target=work, name="test-rollout", daemon=True)
    thread.start()
    return thread, out


def pod_spec(obj) -> dict:
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


# ---- node labels -> node selectors ----------------------------------------------------------------

LABELLED = """
version: "2.0"
services:
  web:
    image: registry.example/web:1
    ports: [8080]
    deployments: {replicas: 2}
  gpu:
    image: registry.example/gpu:1
    deployments: {selectors: {location: gpu}}
  agent:
    image: registry.example/agent:1
    deployments: {workload: per_node}
addons:
  db: {plan: "mysql:basic"}
jobs:
  once: {image: registry.example/job:1}
  nightly: {image: registry.example/job:1, schedule: "0 3 * * *"}
"""


def test_node_labels_set_in_the_console_become_node_selectors(tenant_a, bound, k8s_cluster: K8sCluster):
    owner = tenant_a.owner
    volumes(k8s_cluster, 2)
    sync_cluster(bound)
    labelled, other = (Node.objects.get(cluster=bound, name=n) for n in NODE_NAMES)
    roles = ["dice/stateless-service", "dice/stateful-service", "dice/job", "dice/workspace-dev",
             "dice/location-gpu"]
    clusters.set_node_roles(owner, labelled, roles)
    try:
        node = k8s_cluster.core.read_node(labelled.name)
        assert {k: v for k, v in node.metadata.labels.items() if k.startswith("dice/")} == dict.fromkeys(roles, "true")

        d = deploy(tenant_a, LABELLED, fresh("labelled"))
        assert run_deployment(d.pk)["status"] == "healthy", Deployment.objects.get(pk=d.pk).message
        ns = runtime_ref(d.runtime).namespace
        objects = {}
        for kind, lister in (("Deployment", k8s_cluster.apps.list_namespaced_deployment),
                             ("DaemonSet", k8s_cluster.apps.list_namespaced_daemon_set),
                             ("StatefulSet", k8s_cluster.apps.list_namespaced_stateful_set),
                             ("Job", k8s_cluster.batch.list_namespaced_job),
                             ("CronJob", k8s_cluster.batch.list_namespaced_cron_job)):
            for item in lister(ns).items:
                body = k8s_cluster.api_client.sanitize_for_serialization(item)
                objects[(kind, item.metadata.name.split("-")[0])] = {**body, "kind": kind}
        stateless = {"dice/stateless-service": "true", "dice/workspace-dev": "true"}
        assert pod_spec(objects[("Deployment", "web")])["nodeSelector"] == stateless
        assert pod_spec(objects[("DaemonSet", "agent")])["nodeSelector"] == stateless
        assert pod_spec(objects[("StatefulSet", "db")])["nodeSelector"] == {
            "dice/stateful-service": "true", "dice/workspace-dev": "true"}
        job_selector = {"dice/job": "true", "dice/workspace-dev": "true"}
        assert pod_spec(objects[("Job", "once")])["nodeSelector"] == job_selector
        assert pod_spec(objects[("CronJob", "nightly")])["nodeSelector"] == job_selector
        terms = pod_spec(objects[("Deployment", "gpu")])["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert terms == [{"matchExpressions": [{"key": "dice/location-gpu", "operator": "In", "values": ["true"]}]}]

        # The real scheduler honours them: every pod of the runtime is on the labelled node.
        pods = k8s_cluster.core.list_namespaced_pod(ns).items
        assert pods and {p.spec.node_name for p in pods if p.spec.node_name} == {labelled.name}
        deployments.delete_runtime(owner, d.runtime)
    finally:
        clusters.set_node_roles(owner, Node.objects.get(pk=labelled.pk), [])
    assert other.dice_labels == []


def test_an_unknown_dice_label_is_refused_and_changes_nothing(tenant_a, bound, k8s_cluster: K8sCluster):
    from django.core.exceptions import ValidationError

    sync_cluster(bound)
    node = Node.objects.get(cluster=bound, name=NODE_NAMES[0])
    before = dict(k8s_cluster.core.read_node(node.name).metadata.labels)
    for bad in ("dice/wat", "dice/location-Not_Valid"):
        with pytest.raises(ValidationError, match="unknown dice label"):
            clusters.set_node_roles(tenant_a.owner, node, [bad])
    assert k8s_cluster.core.read_node(node.name).metadata.labels == before


# ---- operator-backed addons: health from the custom resource ----------------------------------------

WITH_DATABASE = """
version: "2.0"
services:
  web:
    image: registry.example/web:1
    ports: [8080]
addons:
  db: {plan: "postgresql:basic"}
"""


@pytest.mark.parametrize("crd", CNPG_FILES, ids=["own", "operator"])
def test_a_deployment_is_not_healthy_while_its_operator_database_is_not(
        tenant_a, bound, k8s_cluster: K8sCluster, dice_cli, crds, crd):
    crds.install(crd)
    d = deploy(tenant_a, WITH_DATABASE, fresh("operator"))
    thread, outcome = rollout_in_thread(d.pk)
    ns = runtime_ref(d.runtime).namespace
    custom = k8s_cluster.custom
    def cluster_made():
        assert not outcome, (outcome, Deployment.objects.get(pk=d.pk).message)  # the rollout must wait
        return custom.get_namespaced_custom_object("postgresql.cnpg.io", "v1", ns, "clusters", "db")

    with contextlib.suppress(TimeoutError):
        wait_for(cluster_made, 60, "the CNPG Cluster")
    cluster_made()

    def web_ready_db_waiting():
        row = Deployment.objects.get(pk=d.pk)
        progress = row.progress or {}
        web = (progress.get("services") or {}).get("web") or {}
        db = (progress.get("addons") or {}).get("db") or {}
        return row.status == "deploying" and web.get("health") == "Healthy" and db.get("health") == "Progressing"

    wait_for(web_ready_db_waiting, 60, "web ready while the database is not")
    time.sleep(1.0)  # the rollout keeps waiting: the Cluster has no status
    row = Deployment.objects.get(pk=d.pk)
    assert row.status == "deploying", row.message
    assert "waiting for the operator" in row.progress["addons"]["db"]["reason"]

    cli = dice_cli(tenant_a.owner)
    code, out, err = cli("runtime", "status", app_path(tenant_a), "--workspace", "DEV", "--runtime", d.runtime.name,
                         "--format", "json")
    assert code == 0, err
    status = json.loads(out)
    db = next(a for a in status["addons"] if a["name"] == "db")
    assert db["health"] == "Progressing" and status["health"] != "Healthy"

    # The operator reports a degraded cluster first: still not healthy, with its words.
    def write_status(body: dict) -> None:
        custom.patch_namespaced_custom_object_status("postgresql.cnpg.io", "v1", ns, "clusters", "db",
                                                     {"status": body})

    write_status({"phase": "Setting up primary", "instances": 1, "readyInstances": 0})
    wait_for(lambda: "Setting up primary" in (Deployment.objects.get(pk=d.pk).progress["addons"]["db"]["reason"]),
             10, "the operator's phase in the progress")
    assert Deployment.objects.get(pk=d.pk).status == "deploying"

    t0 = time.monotonic()
    write_status({"phase": "Cluster in healthy state", "instances": 1, "readyInstances": 1})
    thread.join(30)
    elapsed = time.monotonic() - t0
    assert outcome.get("status") == "healthy", (outcome, Deployment.objects.get(pk=d.pk).message)
    assert elapsed < 5, f"the rollout heard the Cluster's status {elapsed:.1f}s late: it must follow events"

    code, out, err = cli("runtime", "status", app_path(tenant_a), "--workspace", "DEV", "--runtime", d.runtime.name)
    assert code == 0, err
    line = next(ln for ln in out.splitlines() if ln.startswith("db (addon)"))
    assert "Healthy" in line and "1/1" in line
    deployments.delete_runtime(tenant_a.owner, d.runtime)


# ---- built-in first, operator later -------------------------------------------------------------


@pytest.mark.parametrize("crd", CNPG_FILES, ids=["own", "operator"])
def test_a_built_in_addon_keeps_working_when_the_operator_crd_appears(
        tenant_a, bound, k8s_cluster: K8sCluster, crds, crd):
    crds.remove(CNPG)
    volumes(k8s_cluster, 1)
    builtin_rt = fresh("builtin")
    d = deploy(tenant_a, WITH_DATABASE, builtin_rt)
    assert run_deployment(d.pk)["status"] == "healthy", Deployment.objects.get(pk=d.pk).message
    ns = runtime_ref(d.runtime).namespace
    assert k8s_cluster.apps.read_namespaced_stateful_set("db", ns)
    secret = k8s_cluster.core.read_namespaced_secret("db-credentials", ns)
    assert secret.type == "Opaque"

    crds.install(crd)
    d2 = deploy(tenant_a, WITH_DATABASE.replace("web:1", "web:2"), builtin_rt)
    assert run_deployment(d2.pk)["status"] == "healthy", Deployment.objects.get(pk=d2.pk).message
    # The StatefulSet (and its data) stays; no Cluster starts empty beside it.
    assert k8s_cluster.apps.read_namespaced_stateful_set("db", ns)
    assert not k8s_cluster.custom.list_namespaced_custom_object("postgresql.cnpg.io", "v1", ns, "clusters")["items"]
    assert k8s_cluster.core.read_namespaced_secret("db-credentials", ns).type == "Opaque"
    deployments.delete_runtime(tenant_a.owner, d2.runtime)

    # A new runtime, with the operator there from the start, gets the operator's Cluster.
    d3 = deploy(tenant_a, WITH_DATABASE, fresh("fresh"))
    thread, _ = rollout_in_thread(d3.pk)
    ns3 = runtime_ref(d3.runtime).namespace
    wait_for(lambda: k8s_cluster.custom.get_namespaced_custom_object("postgresql.cnpg.io", "v1", ns3, "clusters", "db"),
             60, "the CNPG Cluster of a new runtime")
    deployments.cancel(tenant_a.owner, Deployment.objects.get(pk=d3.pk))
    thread.join(30)
    deployments.delete_runtime(tenant_a.owner, Deployment.objects.get(pk=d3.pk).runtime)


# ---- broadcast without OpenKruise ----------------------------------------------------------------

BROADCAST = """
version: "2.0"
services:
  web: {image: registry.example/web:1, ports: [8080]}
jobs:
  sweep: {image: registry.example/sweep:1, cmd: ./sweep, broadcast: true}
"""


def test_broadcast_without_openkruise_runs_as_a_daemonset(tenant_a, bound, k8s_cluster: K8sCluster, crds):
    crds.remove(KRUISE)
    d = deploy(tenant_a, BROADCAST, fresh("broadcast"))
    assert run_deployment(d.pk)["status"] == "healthy", Deployment.objects.get(pk=d.pk).message
    ns = runtime_ref(d.runtime).namespace
    (ds,) = [x for x in k8s_cluster.apps.list_namespaced_daemon_set(ns).items
             if (x.metadata.annotations or {}).get("dice.io/broadcast-of") == "sweep"]
    assert ds.spec.template.spec.init_containers[-1].image == "registry.example/sweep:1"
    # One pod per node ran it.
    wait_for(lambda: k8s_cluster.apps.read_namespaced_daemon_set(ds.metadata.name, ns).status.number_ready
             == len(NODE_NAMES), 60, "the sweep on every node")
    deployments.delete_runtime(tenant_a.owner, d.runtime)


# ---- the Ingress's URL ---------------------------------------------------------------------------

EXPOSED = """
version: "2.0"
services:
  web:
    image: registry.example/web:1
    ports:
      - port: 8080
        expose: true
  api:
    image: registry.example/api:1
    ports: [9000]
"""


def test_an_ingress_url_shows_in_runtime_status(tenant_a, bound, k8s_cluster: K8sCluster, dice_cli, client):
    d = deploy(tenant_a, EXPOSED, fresh("exposed"))
    assert run_deployment(d.pk)["status"] == "healthy", Deployment.objects.get(pk=d.pk).message
    url = f"http://web-{d.runtime.name}.apps.boundary.test/"
    ns = runtime_ref(d.runtime).namespace
    ingress = k8s.NetworkingV1Api(k8s_cluster.api_client).read_namespaced_ingress("web", ns)
    assert ingress.spec.rules[0].host == f"web-{d.runtime.name}.apps.boundary.test"

    client.force_login(tenant_a.owner)
    body = client.get(f"/api/runtimes/{d.runtime_id}/").json()
    services = {s["name"]: s for s in body["status"]["services"]}
    assert services["web"]["url"] == url and services["api"]["url"] == ""
    page = client.get(f"/orgs/{tenant_a.org.slug}/{tenant_a.project.slug}/{tenant_a.app.slug}/runtimes/DEV/{d.runtime.name}/live/")
    assert page.status_code == 200 and url in page.content.decode()

    cli = dice_cli(tenant_a.owner)
    code, out, err = cli("runtime", "status", app_path(tenant_a), "--workspace", "DEV", "--runtime", d.runtime.name)
    assert code == 0, err
    assert url in out
    deployments.delete_runtime(tenant_a.owner, d.runtime)
