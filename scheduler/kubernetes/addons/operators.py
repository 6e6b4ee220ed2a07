"""Addons made by operators: each class renders the operator's custom resource when its CRD is
present and falls back to the built-in StatefulSet (where there is one) otherwise."""

from __future__ import annotations

from typing import Any

from scheduler.kubernetes.addons.base import (
    AddonProvider,
    plan_size,
    secret_manifest,
    secret_name,
)
from scheduler.kubernetes.addons.builtin import MySQL, PostgreSQL, Redis
from scheduler.kubernetes.context import RenderContext
from scheduler.kubernetes.meta import ADDON_LABEL, manifest


def _cr(ctx: RenderContext, api: str, kind: str, name: str, spec: dict[str, Any]) -> dict:
    labels = {**ctx.labels(name, "addon"), ADDON_LABEL: name}
    return manifest(api, kind, name, ctx.namespace, labels, spec=spec)


def _storage_class(ctx: RenderContext) -> dict[str, str]:
    return {"storageClassName": ctx.cluster.storage_class} if ctx.cluster.storage_class else {}


def _claim(ctx: RenderContext, size: str) -> dict[str, Any]:
    return {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}, **_storage_class(ctx)}


class CnpgPostgreSQL(PostgreSQL):
    """CloudNativePG `Cluster`; clients use the read-write Service `<name>-rw`."""

    def host_service(self, name, operator):
        return f"{name}-rw" if operator else name

    def secret(self, ctx, name, creds, operator):
        data = {"username": creds["username"], "password": creds["password"]}
        # initdb.secret must be a basic-auth Secret with username and password.
        return secret_manifest(ctx, name, data, "kubernetes.io/basic-auth" if operator else "Opaque")

    def render(self, ctx, name, addon, creds, operator):
        if not operator:
            return super().render(ctx, name, addon, creds, operator)
        size = plan_size(self.type, addon.size)
        storage: dict[str, Any] = {"size": size.storage}
        if ctx.cluster.storage_class:
            storage["storageClass"] = ctx.cluster.storage_class
        spec: dict[str, Any] = {
            "instances": size.replicas,
            "resources": size.resources(),
            "storage": storage,
            "bootstrap": {
                "initdb": {
                    "database": creds["database"],
                    "owner": creds["username"],
                    "secret": {"name": secret_name(name)},
                }
            },
        }
        if addon.image:
            spec["imageName"] = addon.image
        return [_cr(ctx, "postgresql.cnpg.io/v1", "Cluster", name, spec)]


class OracleMySQL(MySQL):
    """Oracle MySQL Operator `InnoDBCluster` (group replication behind MySQL Router, Service `<name>`)."""

    # The operator creates only its root account (rootUser); the built-in uses the same account.
    default_username = "root"

    def secret(self, ctx, name, creds, operator):
        data = {"username": creds["username"], "password": creds["password"]}
        if operator:
            data |= {"rootUser": creds["username"], "rootHost": "%", "rootPassword": creds["password"]}
        return secret_manifest(ctx, name, data)

    def render(self, ctx, name, addon, creds, operator):
        if not operator:
            return super().render(ctx, name, addon, creds, operator)
        size = plan_size(self.type, addon.size)
        spec: dict[str, Any] = {
            "secretName": secret_name(name),
            "instances": size.replicas,
            "router": {"instances": 1 if size.replicas == 1 else 2},
            "tlsUseSelfSigned": True,
            "datadirVolumeClaimTemplate": _claim(ctx, size.storage),
            "podSpec": {"containers": [{"name": "mysql", "resources": size.resources()}]},
        }
        version = addon.options.get("version", "")
        if version.count(".") == 2 and version.startswith(("8.", "9.")):
            spec["version"] = version
        return [_cr(ctx, "mysql.oracle.com/v2", "InnoDBCluster", name, spec)]


class OTRedis(Redis):
    """OT redis-operator: `Redis` (standalone) for basic, `RedisReplication` for larger sizes."""

    image_operator = "quay.io/opstree/redis:v7.0.15"

    def host_service(self, name, operator):
        return name

    def render(self, ctx, name, addon, creds, operator):
        if not operator:
            return super().render(ctx, name, addon, creds, operator)
        size = plan_size(self.type, addon.size)
        spec: dict[str, Any] = {
            "kubernetesConfig": {
                "image": addon.image or self.image_operator,
                "imagePullPolicy": "IfNotPresent",
                "resources": size.resources(),
                "redisSecret": {"name": secret_name(name), "key": "password"},
            },
            "storage": {"volumeClaimTemplate": {"spec": _claim(ctx, size.storage)}},
        }
        if addon.size == "basic":
            return [_cr(ctx, "redis.redis.opstreelabs.in/v1beta2", "Redis", name, spec)]
        spec["clusterSize"] = size.replicas
        return [_cr(ctx, "redis.redis.opstreelabs.in/v1beta2", "RedisReplication", name, spec)]

    def connection(self, ctx, name, addon, creds, operator):
        values = super().connection(ctx, name, addon, creds, operator)
        if operator and addon.size != "basic":
            # Writes must reach the master; the operator keeps `<name>-master` pointing at it.
            values["host"] = ctx.host(f"{name}-master")
        return values


class ECKElasticsearch(AddonProvider):
    """Elastic Cloud on Kubernetes `Elasticsearch`; our user comes in through a file realm Secret."""

    type = "elasticsearch"
    port = 9200
    operator = "eck"
    version = "8.15.0"

    def host_service(self, name, operator):
        return f"{name}-es-http"

    def secret(self, ctx, name, creds, operator):
        data = {"username": creds["username"], "password": creds["password"], "roles": "superuser"}
        return secret_manifest(ctx, name, data, "kubernetes.io/basic-auth")

    def render(self, ctx, name, addon, creds, operator):
        size = plan_size(self.type, addon.size)
        spec: dict[str, Any] = {
            "version": addon.options.get("version") or self.version,
            "auth": {"fileRealm": [{"secretName": secret_name(name)}]},
            # Plain HTTP inside the cluster, like the other addons.
            "http": {"tls": {"selfSignedCertificate": {"disabled": True}}},
            "nodeSets": [
                {
                    "name": "default",
                    "count": size.replicas,
                    "config": {"node.store.allow_mmap": False},
                    "podTemplate": {
                        "spec": {"containers": [{"name": "elasticsearch", "resources": size.resources()}]}
                    },
                    "volumeClaimTemplates": [
                        {"metadata": {"name": "elasticsearch-data"}, "spec": _claim(ctx, size.storage)}
                    ],
                }
            ],
        }
        if addon.image:
            spec["image"] = addon.image
        return [_cr(ctx, "elasticsearch.k8s.elastic.co/v1", "Elasticsearch", name, spec)]


class StrimziKafka(AddonProvider):
    """Strimzi `Kafka` (KRaft) plus one `KafkaNodePool` of combined controller/broker nodes."""

    type = "kafka"
    port = 9092
    operator = "strimzi"
    needs_secret = False

    def host_service(self, name, operator):
        return f"{name}-kafka-bootstrap"

    def connection(self, ctx, name, addon, creds, operator):
        values = super().connection(ctx, name, addon, creds, operator)
        values["servers"] = f"{values['host']}:{self.port}"
        return values

    def render(self, ctx, name, addon, creds, operator):
        size = plan_size(self.type, addon.size)
        factor = min(3, size.replicas)
        kafka = _cr(
            ctx,
            "kafka.strimzi.io/v1",
            "Kafka",
            name,
            {
                "kafka": {
                    "listeners": [{"name": "plain", "port": self.port, "type": "internal", "tls": False}],
                    "config": {
                        "offsets.topic.replication.factor": factor,
                        "transaction.state.log.replication.factor": factor,
                        "transaction.state.log.min.isr": max(1, factor - 1),
                        "default.replication.factor": factor,
                        "min.insync.replicas": max(1, factor - 1),
                    },
                },
                "entityOperator": {"topicOperator": {}, "userOperator": {}},
            },
        )
        pool = _cr(
            ctx,
            "kafka.strimzi.io/v1",
            "KafkaNodePool",
            f"{name}-pool",
            {
                "replicas": size.replicas,
                "roles": ["controller", "broker"],
                "resources": size.resources(),
                "storage": {
                    "type": "persistent-claim",
                    "size": size.storage,
                    "deleteClaim": False,
                    **({"class": ctx.cluster.storage_class} if ctx.cluster.storage_class else {}),
                },
            },
        )
        pool["metadata"]["labels"]["strimzi.io/cluster"] = name
        return [kafka, pool]


class RabbitMQ(AddonProvider):
    """RabbitMQ Cluster Operator `RabbitmqCluster`; its default user is read from our Secret."""

    type = "rabbitmq"
    port = 5672
    operator = "rabbitmq"

    def render(self, ctx, name, addon, creds, operator):
        size = plan_size(self.type, addon.size)
        persistence: dict[str, Any] = {"storage": size.storage, **_storage_class(ctx)}
        spec: dict[str, Any] = {
            "replicas": size.replicas,
            "resources": size.resources(),
            "persistence": persistence,
            "secretBackend": {"externalSecret": {"name": secret_name(name)}},
        }
        if addon.image:
            spec["image"] = addon.image
        return [_cr(ctx, "rabbitmq.com/v1beta1", "RabbitmqCluster", name, spec)]


PROVIDERS = (CnpgPostgreSQL(), OracleMySQL(), OTRedis(), ECKElasticsearch(), StrimziKafka(), RabbitMQ())
