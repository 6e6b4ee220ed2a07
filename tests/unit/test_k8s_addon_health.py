"""Operator-backed addons judged from their custom resources, and Ingress URLs, as status() reads them."""

from __future__ import annotations

import json

import pytest

from scheduler.base import Health, RuntimeRef
from scheduler.kubernetes.addons.health import (
    ANNOTATION,
    CUSTOM_HEALTH,
    addon_resources,
    custom_status,
    recorded,
)
from scheduler.kubernetes.status import group_status, ingress_urls

RT = RuntimeRef("acme", "shop", "web", "DEV", "main")


def kind(api: str, name: str):
    return CUSTOM_HEALTH[(api, name)]


CNPG = kind("postgresql.cnpg.io/v1", "Cluster")


@pytest.mark.parametrize(("status", "health", "reason"), [
    (None, Health.PROGRESSING, "waiting for the operator"),
    ({"phase": "Setting up primary", "readyInstances": 0}, Health.PROGRESSING, "Setting up primary"),
    ({"phase": "Cluster in healthy state", "readyInstances": 1}, Health.PROGRESSING, "Cluster in healthy state"),
    ({"phase": "Cluster in healthy state", "readyInstances": 2}, Health.HEALTHY, ""),
    ({"phase": "Failed to create pod", "readyInstances": 0}, Health.DEGRADED, "Failed"),
])
def test_cnpg_cluster(status, health, reason):
    obj = {"spec": {"instances": 2}, **({"status": status} if status else {})}
    st = custom_status("db", CNPG, obj, None)
    assert st.health == health and reason in st.reason and st.desired == 2


def test_missing_resource_is_missing_and_makes_the_group_degraded():
    st = custom_status("db", CNPG, None, None)
    assert st.health == Health.MISSING
    group = group_status(RT, True, [], [], [], custom={"db": st})
    assert group.health == Health.DEGRADED and group.reason.startswith("addon db")


def test_one_waiting_database_keeps_the_runtime_from_healthy():
    waiting = custom_status("db", CNPG, {"spec": {"instances": 1}}, None)
    group = group_status(RT, True, [], [], [], custom={"db": waiting})
    assert group.health == Health.PROGRESSING and "db" in group.addons


def test_other_operators():
    strimzi = kind("kafka.strimzi.io/v1", "Kafka")
    assert custom_status("k", strimzi, {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, None).health == Health.HEALTHY
    assert custom_status("k", strimzi, {"status": {"conditions": [
        {"type": "NotReady", "status": "True", "reason": "Creating"}]}}, None).health == Health.PROGRESSING
    assert custom_status("k", strimzi, {"status": {"conditions": [
        {"type": "NotReady", "status": "True", "reason": "InvalidResourceException", "message": "bad"}]}},
        None).health == Health.DEGRADED
    rabbit = kind("rabbitmq.com/v1beta1", "RabbitmqCluster")
    ok = {"spec": {"replicas": 3}, "status": {"conditions": [{"type": "AllReplicasReady", "status": "True"},
                                                              {"type": "ReconcileSuccess", "status": "True"}]}}
    assert custom_status("q", rabbit, ok, None).health == Health.HEALTHY
    assert custom_status("q", rabbit, {"spec": {}}, None).health == Health.PROGRESSING
    eck = kind("elasticsearch.k8s.elastic.co/v1", "Elasticsearch")
    spec = {"nodeSets": [{"count": 3}]}
    assert custom_status("es", eck, {"spec": spec, "status": {"phase": "Ready", "health": "green", "availableNodes": 3}},
                         None).health == Health.HEALTHY
    assert custom_status("es", eck, {"spec": spec, "status": {"phase": "Ready", "health": "red"}}, None).health == Health.DEGRADED
    mysql = kind("mysql.oracle.com/v2", "InnoDBCluster")
    assert custom_status("m", mysql, {"spec": {"instances": 1}, "status": {"cluster": {
        "status": "ONLINE", "onlineInstances": 1}}}, None).health == Health.HEALTHY
    assert custom_status("m", mysql, {"spec": {"instances": 3}, "status": {"cluster": {
        "status": "NO_QUORUM", "onlineInstances": 1}}}, None).health == Health.DEGRADED
    # OT Redis reports no status: its StatefulSet of the same name is what counts.
    redis = kind("redis.redis.opstreelabs.in/v1beta2", "Redis")
    assert custom_status("c", redis, {"spec": {}}, None).health == Health.PROGRESSING
    assert custom_status("c", redis, {"spec": {}}, {"status": {"readyReplicas": 1}}).health == Health.HEALTHY
    replication = kind("redis.redis.opstreelabs.in/v1beta2", "RedisReplication")
    sts = {"status": {"readyReplicas": 2}}
    assert custom_status("c", replication, {"spec": {"clusterSize": 2}}, sts).health == Health.PROGRESSING
    assert custom_status("c", replication, {"spec": {"clusterSize": 2}, "status": {"masterNode": "c-0"}},
                         sts).health == Health.HEALTHY


def test_the_namespace_annotation_round_trip():
    manifests = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}},
        {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
         "metadata": {"name": "db", "labels": {"dice.io/addon": "db"}}},
        {"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaNodePool", "metadata": {"name": "k-pool"}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "cache"}},
    ]
    listed = addon_resources(manifests)
    assert listed == [["postgresql.cnpg.io/v1", "Cluster", "db", "db"]]
    ns = {"metadata": {"annotations": {ANNOTATION: json.dumps(listed + [["x/v1", "Odd", "o", "o"], "junk"])}}}
    assert [(k.kind, name, addon) for k, name, addon in recorded(ns)] == [("Cluster", "db", "db")]
    assert recorded({"metadata": {"annotations": {ANNOTATION: "{not json"}}}) == []


def test_ingress_urls():
    ingresses = [
        {"spec": {"rules": [{"host": "web-main.apps.test", "http": {"paths": [
            {"path": "/", "backend": {"service": {"name": "web", "port": {"number": 8080}}}}]}}]}},
        {"spec": {"tls": [{"hosts": ["api.example.com"]}], "rules": [
            {"host": "api.example.com", "http": {"paths": [
                {"path": "/v1", "backend": {"service": {"name": "api", "port": {"number": 9000}}}}]}},
            {"http": {"paths": [{"path": "/", "backend": {"service": {"name": "hostless"}}}]}}]}},
    ]
    assert ingress_urls(ingresses) == {"web": "http://web-main.apps.test/", "api": "https://api.example.com/v1"}
