"""The capability report on a real API server: an operator counts as installed only when every
CRD the renderer needs from it is there (CRDs from ../shared/crds), and only then does the
renderer get to use it."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes.client.rest import ApiException

from apps.clusters import services
from scheduler import registry
from scheduler.base import ClusterRef
from tests.conftest import SHARED

from .conftest import K8sCluster, wait_for

pytestmark = pytest.mark.k8s

KAFKA_CRD = SHARED / "crds" / "strimzi" / "040-Crd-kafka.yaml"
REDIS_CRD = SHARED / "crds" / "ot-redis-operator" / "redis.redis.opstreelabs.in_redis.yaml"
REPLICATION_CRD = SHARED / "crds" / "ot-redis-operator" / "redis.redis.opstreelabs.in_redisreplications.yaml"
# ../shared/crds has no KafkaNodePool CRD: the smallest one the API server accepts.
NODE_POOL_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "kafkanodepools.kafka.strimzi.io"},
    "spec": {"group": "kafka.strimzi.io", "scope": "Namespaced",
             "names": {"kind": "KafkaNodePool", "plural": "kafkanodepools", "singular": "kafkanodepool",
                       "listKind": "KafkaNodePoolList"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
}


def _install(k8s: K8sCluster, doc: dict) -> None:
    try:
        k8s.apiextensions.create_custom_resource_definition(doc)
    except ApiException as exc:
        if exc.status != 409:
            raise


def _crd(path: Path) -> dict:
    return next(d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "CustomResourceDefinition")


def _operator(report: dict, key: str) -> dict:
    return next(o for o in report["operators"] if o["key"] == key)


def test_an_operator_is_installed_only_with_every_crd_it_needs(tenant_a, k8s_cluster: K8sCluster):
    cluster = services.register_cluster(tenant_a.owner, name=f"kt-{uuid.uuid4().hex[:6]}",
                                        kubeconfig=Path(k8s_cluster.kubeconfig).read_text(), check=False)
    _install(k8s_cluster, _crd(KAFKA_CRD))
    _install(k8s_cluster, _crd(REDIS_CRD))
    try:
        k8s_cluster.apiextensions.delete_custom_resource_definition("kafkanodepools.kafka.strimzi.io")
    except ApiException as exc:
        if exc.status != 404:
            raise
    wait_for(lambda: "kafkanodepools.kafka.strimzi.io" not in
             {c.metadata.name for c in k8s_cluster.apiextensions.list_custom_resource_definition().items}, 30,
             "the KafkaNodePool CRD to be gone")

    report = services.run_check(cluster)
    strimzi = _operator(report, "strimzi")
    assert strimzi["installed"] is False  # the Kafka CRD alone is not the operator the renderer needs
    assert strimzi["missing_crds"] == ["kafkanodepools.kafka.strimzi.io"]
    assert "Strimzi (Kafka)" in report["missing_operators"]
    cluster.refresh_from_db()
    assert "kafkas.kafka.strimzi.io" not in cluster.operators  # so the renderer builds no Kafka

    _install(k8s_cluster, NODE_POOL_CRD)
    _install(k8s_cluster, _crd(REPLICATION_CRD))
    try:
        report = services.run_check(cluster)
        assert _operator(report, "strimzi")["installed"] is True
        assert _operator(report, "ot-redis")["installed"] is True and _operator(report, "ot-redis")["missing_crds"] == []
        assert "kafka" in report["features"]["operator_addons"] and "redis" in report["features"]["operator_addons"]
        assert report["features"]["ingress"] and report["features"]["images"]
        cluster.refresh_from_db()
        assert {"kafkas.kafka.strimzi.io", "kafkanodepools.kafka.strimzi.io"} <= set(cluster.operators)
        page = tenant_a.browser_client().get(cluster.get_absolute_url()).content.decode()
        assert "kafkanodepools.kafka.strimzi.io" in page  # the page names every CRD of an operator
    finally:
        k8s_cluster.apiextensions.delete_custom_resource_definition("kafkanodepools.kafka.strimzi.io")


def test_the_snapshot_and_check_go_through_the_registry(k8s_cluster: K8sCluster):
    inspector = registry.inspector_for(ClusterRef(name="kt", kind="kubernetes",
                                                  config={"kubeconfig": k8s_cluster.kubeconfig}))
    snap = inspector.snapshot()
    assert {n["name"] for n in snap["nodes"]} and "default" in {n["name"] for n in snap["namespaces"]}
    report = inspector.check()
    assert report["reachable"] and report["server_version"].startswith("v1.")
    unreachable = registry.inspector_for(ClusterRef(name="gone", kind="kubernetes", config={
        "kubeconfig": Path(k8s_cluster.kubeconfig).read_text().replace(k8s_cluster.server, "https://127.0.0.1:9")}))
    report = unreachable.check()
    assert not report["reachable"] and "cannot reach the API server" in report["error"]
