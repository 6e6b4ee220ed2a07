"""The Kubernetes driver against a real kube-apiserver (tools/ktestenv; kwok plays the kubelets)."""

from __future__ import annotations

import uuid

import pytest
import yaml
from kubernetes.client.rest import ApiException

from diceyml import parse_dice_yml
from scheduler.base import ClusterRef, ExecutorError, Health, JobSpec, JobState, RuntimeRef, ServiceGroup
from scheduler.kubernetes.addons import generate_addon_secrets
from scheduler.kubernetes.driver import KubernetesExecutor
from tests.conftest import CONFORMANCE, DATA, SHARED_CRDS
from tests.k8s.conftest import wait_for

pytestmark = pytest.mark.k8s

STORAGE_CLASS = "dice-kwok"
# Our own minimal CRDs (tests/data/crds), and in the conformance tier the operators' real ones,
# read in place from ../shared/crds (ECK's is over etcd's request size and is not installed).
OWN_CRD_FILES = tuple(DATA / "crds" / name for name in ("cnpg.yaml", "ot-redis.yaml", "rabbitmq.yaml", "kruise.yaml"))
CRD_FILES = tuple(SHARED_CRDS / rel for rel in (
    "cloudnative-pg/postgresql.cnpg.io_clusters.yaml",
    "ot-redis-operator/redis.redis.opstreelabs.in_redis.yaml",
    "ot-redis-operator/redis.redis.opstreelabs.in_redisreplications.yaml",
    "rabbitmq-cluster-operator/rabbitmq.com_rabbitmqclusters.yaml",
    "kruise/apps.kruise.io_broadcastjobs.yaml",
))
SIMPLE = """
version: "2.0"
services:
  web:
    image: registry.example/web:1
    ports: [8080]
    deployments: {replicas: 2}
  api:
    image: registry.example/api:1
    ports: [9000]
"""


@pytest.fixture(scope="module")
def executor(k8s_cluster):
    ex = KubernetesExecutor(
        ClusterRef("ktest", "kubernetes", config={"kubeconfig": k8s_cluster.kubeconfig},
                   wildcard_domain="apps.test", storage_class=STORAGE_CLASS),
        api_client=k8s_cluster.api_client,
    )
    _volumes(k8s_cluster, 12)
    return ex


def _volumes(cluster, count: int) -> None:
    """Static PersistentVolumes the claims can bind to (there is no provisioner under kwok)."""
    for i in range(count):
        body = {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": f"dice-kwok-{uuid.uuid4().hex[:8]}-{i}"},
            "spec": {"capacity": {"storage": "500Gi"}, "accessModes": ["ReadWriteOnce"],
                     "storageClassName": STORAGE_CLASS, "hostPath": {"path": f"/tmp/pv{i}"},
                     "persistentVolumeReclaimPolicy": "Delete"},
        }
        cluster.core.create_persistent_volume(body)


def runtime(name: str = "") -> RuntimeRef:
    return RuntimeRef("acme", "shop", "web", "DEV", name or f"t{uuid.uuid4().hex[:8]}")


def group(rt: RuntimeRef, text: str, images: dict | None = None, release: str = "r1") -> ServiceGroup:
    spec = parse_dice_yml(text, workspace=rt.workspace)
    return ServiceGroup(rt, spec, release=release, images=images or {}, addon_secrets=generate_addon_secrets(spec),
                        cluster_name="ktest")


def healthy(status) -> bool:
    return status.health is Health.HEALTHY


@pytest.mark.parametrize(("path", "some", "first"), [
    (DATA / "diceyml" / "platform.yml", {"gateway", "accounts", "mysql"}, "gateway"),
    pytest.param(CONFORMANCE / "dice" / "erda.yml", {"erda-server", "collector", "mysql"}, "erda-server",
                 marks=pytest.mark.conformance),
], ids=["platform", "erda"])
def test_large_spec_applies_and_becomes_healthy(executor, k8s_cluster, path, some, first):
    text = path.read_text()
    spec = parse_dice_yml(text, workspace="DEV")
    rt = runtime()
    executor.apply(group(rt, text, dict.fromkeys(spec.services, "registry.example/x:1")))
    ns = rt.namespace
    deployments = {d.metadata.name for d in k8s_cluster.apps.list_namespaced_deployment(ns).items}
    assert deployments == set(spec.services)
    services = {s.metadata.name for s in k8s_cluster.core.list_namespaced_service(ns).items}
    assert some <= services
    assert k8s_cluster.apps.read_namespaced_stateful_set("mysql", ns).spec.replicas == 1
    secret = k8s_cluster.core.read_namespaced_secret("mysql-credentials", ns)
    assert set(secret.data) == {"username", "password"}
    status = executor.wait_until(rt, healthy, timeout=120)
    assert status.services[first].ready == status.services[first].desired == 1  # DEV values
    assert status.addons["mysql"].health is Health.HEALTHY
    executor.destroy(rt)


def test_second_apply_prunes_scale_restart_destroy(executor, k8s_cluster):
    rt = runtime()
    executor.apply(group(rt, SIMPLE))
    ns = rt.namespace
    status = executor.wait_until(rt, healthy, timeout=90)
    assert status.services["web"].available == 2
    # Applying the same group again is harmless.
    executor.apply(group(rt, SIMPLE))
    # A release without `api`: its Deployment and Service are pruned.
    executor.apply(group(rt, SIMPLE.split("  api:")[0], release="r2"))
    with pytest.raises(ApiException) as exc:
        k8s_cluster.apps.read_namespaced_deployment("api", ns)
    assert exc.value.status == 404
    assert "api" not in executor.status(rt).services  # the status cache has the prune already
    names = {s.metadata.name for s in k8s_cluster.core.list_namespaced_service(ns).items}
    assert names == {"web"}
    assert k8s_cluster.apps.read_namespaced_deployment("web", ns).metadata.labels["dice.io/release"] == "r2"
    # Scale, watched until ready.
    executor.scale(rt, "web", 3)
    status = executor.wait_until(rt, lambda s: s.services["web"].ready == 3 and healthy(s), timeout=90)
    assert status.services["web"].desired == 3
    # Restart bumps the template annotation.
    executor.restart(rt, "web")
    template = k8s_cluster.apps.read_namespaced_deployment("web", ns).spec.template
    assert "dice.io/restarted-at" in template.metadata.annotations
    assert executor.events(rt, "web")
    # Destroy: the namespace goes, status says Missing.
    executor.destroy(rt)
    executor.destroy(rt)  # twice is fine
    wait_for(lambda: executor.status(rt).health is Health.MISSING, 120, "namespace deletion")


def test_a_reapply_sends_only_what_changed_or_what_someone_else_changed(executor, k8s_cluster, monkeypatch):
    """Each object carries the digest of its rendering: an unchanged re-apply sends the Namespace
    alone; a Deployment another manager edited (or our own scale) is applied again and its
    edit undone; a new release sends everything it changed."""
    rt = runtime()
    executor.apply(group(rt, SIMPLE))
    ns = rt.namespace
    sent: list[str] = []
    real = executor._apply_one

    def counting(obj):
        sent.append(f"{obj['kind']}/{obj['metadata']['name']}")
        return real(obj)

    monkeypatch.setattr(executor, "_apply_one", counting)
    executor.apply(group(rt, SIMPLE))
    assert sent == [f"Namespace/{ns}"]
    deployment = k8s_cluster.apps.read_namespaced_deployment("web", ns)
    assert deployment.metadata.annotations["dice.io/applied-digest"]
    k8s_cluster.apps.patch_namespaced_deployment("web", ns, {"spec": {"replicas": 5}}, field_manager="someone")
    sent.clear()
    executor.apply(group(rt, SIMPLE))
    assert sent == [f"Namespace/{ns}", "Deployment/web"]
    assert k8s_cluster.apps.read_namespaced_deployment("web", ns).spec.replicas == 2  # the edit undone
    executor.scale(rt, "web", 3)
    sent.clear()
    executor.apply(group(rt, SIMPLE))
    assert sent == [f"Namespace/{ns}", "Deployment/web"]
    assert k8s_cluster.apps.read_namespaced_deployment("web", ns).spec.replicas == 2
    sent.clear()
    executor.apply(group(rt, SIMPLE.replace("registry.example/api:1", "registry.example/api:2")))
    assert sent == [f"Namespace/{ns}", "Deployment/api"]
    assert k8s_cluster.apps.read_namespaced_deployment("api", ns).spec.template.spec.containers[0].image.endswith(":2")
    executor.destroy(rt)


def test_status_is_read_from_the_watch_fed_cache_without_listing(executor, k8s_cluster, monkeypatch):
    """Once the namespace's cache has listed everything, status() and wait_until are answered from
    it: no list request per call (the list calls fail here and nothing notices), changes made by
    anyone arrive through the watches, and this process's own writes are seen at once."""
    from kubernetes import client

    rt = runtime()
    executor.apply(group(rt, SIMPLE))
    executor.wait_until(rt, healthy, timeout=90)
    listed = []

    def refuse(name):
        def fail(*args, **kwargs):
            listed.append(name)
            raise AssertionError(f"status() called {name}")
        return fail

    # The cache's reflectors hold methods bound before this: only new list calls are refused.
    for cls, name in ((client.CoreV1Api, "list_namespaced_pod"), (client.CoreV1Api, "list_namespaced_event"),
                      (client.AppsV1Api, "list_namespaced_deployment"), (client.CoreV1Api, "read_namespace")):
        monkeypatch.setattr(cls, name, refuse(name))
    assert executor.status(rt).health is Health.HEALTHY
    # Changed by another client: heard through the watches.
    k8s_cluster.apps.patch_namespaced_deployment_scale("web", rt.namespace, {"spec": {"replicas": 3}})
    status = executor.wait_until(rt, lambda s: s.services["web"].ready == 3 and healthy(s), timeout=90)
    assert status.services["web"].desired == 3
    # Our own write: the very next status() has it (it waits for the watch to deliver it).
    executor.scale(rt, "web", 1)
    assert executor.status(rt).services["web"].desired == 1
    assert listed == []
    monkeypatch.undo()
    executor.destroy(rt)
    wait_for(lambda: executor.status(rt).health is Health.MISSING, 120, "namespace deletion")


def test_unschedulable_service_is_degraded_with_reason(executor):
    rt = runtime()
    text = SIMPLE.split("  api:")[0].replace("replicas: 2}", "replicas: 1, selectors: {disk: nowhere}}")
    executor.apply(group(rt, text))
    status = executor.wait_until(rt, lambda s: s.health is Health.DEGRADED, timeout=60)
    assert "Unschedulable" in status.services["web"].reason
    assert status.reason.startswith("service web")
    executor.destroy(rt)


def test_jobs_in_spec_and_run_job(executor, k8s_cluster):
    rt = runtime()
    text = 'version: "2.0"\njobs:\n  migrate:\n    image: registry.example/m:1\n    backoff_limit: 1\n'
    executor.apply(group(rt, text))
    ns = rt.namespace
    jobs = k8s_cluster.batch.list_namespaced_job(ns).items
    assert len(jobs) == 1 and jobs[0].metadata.name.startswith("migrate-")
    assert executor.wait_job(jobs[0].metadata.name, ns, timeout=90).state is JobState.SUCCEEDED

    spec = JobSpec(name=f"run-{uuid.uuid4().hex[:6]}-a1", image="registry.example/step:1", command=["true"],
                   namespace=ns, timeout=600)
    first = executor.run_job(spec)
    assert first.state in (JobState.PENDING, JobState.RUNNING, JobState.SUCCEEDED)
    assert executor.run_job(spec).name == first.name  # created only once
    assert executor.wait_job(spec.name, ns, timeout=90).state is JobState.SUCCEEDED
    assert len([j for j in k8s_cluster.batch.list_namespaced_job(ns).items if j.metadata.name == spec.name]) == 1
    # A later apply does not prune run_job's Jobs.
    executor.apply(group(rt, text))
    assert executor.job_status(spec.name, ns).state is JobState.SUCCEEDED
    assert executor.job_status("nope", ns).state is JobState.MISSING
    executor.cancel_job(spec.name + "-x", ns)  # missing is fine
    placed = JobSpec(name=f"run-{uuid.uuid4().hex[:6]}-f1", image="registry.example/step:1", command=["true"],
                     namespace=ns, files={"/work/spec.json": "{}"})
    with pytest.raises(ExecutorError, match="local cluster only; on Kubernetes put them in a Secret"):
        executor.run_job(placed)
    assert executor.job_status(placed.name, ns).state is JobState.MISSING  # refused: nothing created
    executor.destroy(rt)


@pytest.fixture
def crds(request, k8s_cluster):
    """Install the parameter's CRD files; remove them afterwards, so the other set can be installed."""
    ext = k8s_cluster.apiextensions
    docs = [doc for path in request.param for doc in yaml.safe_load_all(path.read_text())
            if doc and doc.get("kind") == "CustomResourceDefinition"]
    names = [doc["metadata"]["name"] for doc in docs]

    def remove() -> None:
        for name in names:
            try:
                ext.delete_custom_resource_definition(name)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        wait_for(lambda: not {c.metadata.name for c in ext.list_custom_resource_definition().items} & set(names),
                 60, "the CRDs to be removed")

    remove()  # another test of the session may have installed another version of one of them
    for doc in docs:
        ext.create_custom_resource_definition(doc)
    yield names
    remove()


@pytest.mark.parametrize("crds", [
    OWN_CRD_FILES, pytest.param(CRD_FILES, marks=pytest.mark.conformance)], ids=["own", "operators"], indirect=True)
def test_operator_crds_are_discovered_and_custom_resources_accepted(executor, k8s_cluster, crds):
    wait_for(lambda: "broadcastjobs.apps.kruise.io" in executor.operators()
             and "clusters.postgresql.cnpg.io" in executor.operators(), 60, "CRDs to be served")
    assert "postgresql.cnpg.io/v1/Cluster" in executor.operators()
    rt = runtime()
    text = """
version: "2.0"
services:
  web: {image: registry.example/web:1, ports: [80]}
jobs:
  sweep: {image: registry.example/sweep:1, broadcast: true}
addons:
  pg: {plan: "postgresql:professional"}
  cache: {plan: "redis:professional"}
  queue: {plan: "rabbitmq:basic"}
  db: {plan: "mysql:basic"}
"""
    wait_for(lambda: executor.apply(group(rt, text)) or True, 60, "apply with custom resources")
    ns = rt.namespace
    custom = k8s_cluster.custom
    assert custom.get_namespaced_custom_object("postgresql.cnpg.io", "v1", ns, "clusters", "pg")["spec"]["instances"] == 2
    assert custom.get_namespaced_custom_object("redis.redis.opstreelabs.in", "v1beta2", ns, "redisreplications", "cache")
    assert custom.get_namespaced_custom_object("rabbitmq.com", "v1beta1", ns, "rabbitmqclusters", "queue")
    jobs = custom.list_namespaced_custom_object("apps.kruise.io", "v1alpha1", ns, "broadcastjobs")["items"]
    assert len(jobs) == 1
    # mysql-operator is not installed: the built-in StatefulSet.
    assert k8s_cluster.apps.read_namespaced_stateful_set("db", ns)
    # Dropping an addon prunes its custom resource.
    executor.apply(group(rt, text.replace('  queue: {plan: "rabbitmq:basic"}\n', "")))
    assert not custom.list_namespaced_custom_object("rabbitmq.com", "v1beta1", ns, "rabbitmqclusters")["items"]
    executor.destroy(rt)
