"""The capability report on a real API server: an operator counts as installed only when every
CRD the renderer needs from it is there, and only then does the renderer get to use it (our own
minimal CRDs, tests/data/crds: the names are what the check looks at)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes.client.rest import ApiException

from apps.clusters import services
from scheduler import registry
from scheduler.base import ClusterRef
from tests.conftest import DATA

from .conftest import K8sCluster, wait_for

pytestmark = pytest.mark.k8s

OWN = {"strimzi": DATA / "crds" / "strimzi.yaml", "ot-redis": DATA / "crds" / "ot-redis.yaml"}


def _docs(*paths: Path) -> list[dict]:
    return [d for path in paths for d in yaml.safe_load_all(path.read_text())
            if d and d.get("kind") == "CustomResourceDefinition"]


def _remove(k8s: K8sCluster, names: list[str]) -> None:
    ext = k8s.apiextensions
    for name in names:
        try:
            ext.delete_custom_resource_definition(name)
        except ApiException as exc:
            if exc.status != 404:
                raise
    wait_for(lambda: not {c.metadata.name for c in ext.list_custom_resource_definition().items} & set(names),
             60, "the CRDs to be removed")


def _operator(report: dict, key: str) -> dict:
    return next(o for o in report["operators"] if o["key"] == key)


def test_an_operator_is_installed_only_with_every_crd_it_needs(tenant_a, k8s_cluster: K8sCluster):
    cluster = services.register_cluster(tenant_a.owner, name=f"kt-{uuid.uuid4().hex[:6]}",
                                        kubeconfig=Path(k8s_cluster.kubeconfig).read_text(), check=False)
    kafka, pools = _docs(OWN["strimzi"])  # Kafka, KafkaNodePool
    redis, replications = _docs(OWN["ot-redis"])  # Redis, RedisReplication
    names = [d["metadata"]["name"] for d in (kafka, pools, redis, replications)]
    _remove(k8s_cluster, names)  # another test of the session may have installed some of them
    try:
        k8s_cluster.apiextensions.create_custom_resource_definition(kafka)
        k8s_cluster.apiextensions.create_custom_resource_definition(redis)
        report = services.run_check(cluster)
        for key, missing in (("strimzi", pools), ("ot-redis", replications)):
            operator = _operator(report, key)
            assert operator["installed"] is False, operator  # one CRD of two is not the operator
            assert operator["missing_crds"] == [missing["metadata"]["name"]]
            assert operator["label"] in report["missing_operators"]
        cluster.refresh_from_db()
        assert "kafkas.kafka.strimzi.io" not in cluster.operators  # so the renderer makes no Kafka
        page = tenant_a.browser_client().get(cluster.get_absolute_url()).content.decode()
        assert "missing <code>kafkanodepools.kafka.strimzi.io</code>" in page

        k8s_cluster.apiextensions.create_custom_resource_definition(pools)
        k8s_cluster.apiextensions.create_custom_resource_definition(replications)
        report = services.run_check(cluster)
        for key in ("strimzi", "ot-redis"):
            assert _operator(report, key)["installed"] is True and _operator(report, key)["missing_crds"] == []
        assert {"kafka", "redis"} <= set(report["features"]["operator_addons"])
        assert report["features"]["ingress"] and report["features"]["images"]
        cluster.refresh_from_db()
        assert set(names) <= set(cluster.operators)  # every CRD of each complete operator, for the renderer
    finally:
        _remove(k8s_cluster, names)


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
