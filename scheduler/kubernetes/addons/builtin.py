"""Built-in addons without an operator: a StatefulSet, a headless Service, a volumeClaimTemplate."""

from __future__ import annotations

from typing import Any

from diceyml import Addon
from scheduler.kubernetes.addons import (
    AddonProvider,
    plan_size,
    register_provider,
    secret_name,
)
from scheduler.kubernetes.context import RenderContext
from scheduler.kubernetes.meta import ADDON_LABEL, manifest


def _secret_env(var: str, addon: str, key: str) -> dict[str, Any]:
    return {"name": var, "valueFrom": {"secretKeyRef": {"name": secret_name(addon), "key": key}}}


class BuiltinProvider(AddonProvider):
    builtin = True
    image = ""
    data_path = "/data"
    ports: tuple[tuple[str, int], ...] = ()

    def image_for(self, addon: Addon) -> str:
        if addon.image:
            return addon.image
        version = addon.options.get("version")
        repo = self.image.partition(":")[0]
        return f"{repo}:{version}" if version else self.image

    def replicas(self, addon: Addon) -> int:
        return 1

    def container(self, ctx: RenderContext, name: str, addon: Addon, creds: dict[str, str]) -> dict[str, Any]:
        raise NotImplementedError

    def render(self, ctx: RenderContext, name: str, addon: Addon, creds: dict[str, str], operator: bool) -> list[dict]:
        size = plan_size(self.type, addon.size)
        labels = {**ctx.labels(name, "addon"), ADDON_LABEL: name}
        selector = {ADDON_LABEL: name}
        container = {
            "name": self.type,
            "image": self.image_for(addon),
            "ports": [{"name": pname, "containerPort": port, "protocol": "TCP"} for pname, port in self.ports],
            "resources": size.resources(),
            "volumeMounts": [{"name": "data", "mountPath": self.data_path}],
            **self.container(ctx, name, addon, creds),
        }
        claim_spec: dict[str, Any] = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size.storage}},
        }
        if ctx.cluster.storage_class:
            claim_spec["storageClassName"] = ctx.cluster.storage_class
        service = manifest(
            "v1",
            "Service",
            name,
            ctx.namespace,
            labels,
            spec={
                "clusterIP": "None",
                "publishNotReadyAddresses": True,
                "selector": selector,
                "ports": [{"name": p, "port": port, "targetPort": port, "protocol": "TCP"} for p, port in self.ports],
            },
        )
        statefulset = manifest(
            "apps/v1",
            "StatefulSet",
            name,
            ctx.namespace,
            labels,
            spec={
                "serviceName": name,
                "replicas": self.replicas(addon),
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [container], "enableServiceLinks": False,
                             **({"nodeSelector": ctx.node_selector("stateful")} if ctx.node_selector("stateful") else {})},
                },
                # No managed-by label here: the claims outlive the StatefulSet and are never pruned.
                "volumeClaimTemplates": [
                    {"metadata": {"name": "data", "labels": selector}, "spec": claim_spec}
                ],
            },
        )
        return [service, statefulset]


class MySQL(BuiltinProvider):
    type = "mysql"
    port = 3306
    operator = "mysql-operator"
    image = "mysql:8"
    data_path = "/var/lib/mysql"
    ports = (("mysql", 3306),)

    def container(self, ctx, name, addon, creds):
        env = [_secret_env("MYSQL_ROOT_PASSWORD", name, "password"), {"name": "MYSQL_DATABASE", "value": creds["database"]}]
        if creds["username"] != "root":
            env += [{"name": "MYSQL_USER", "value": creds["username"]}, _secret_env("MYSQL_PASSWORD", name, "password")]
        ping = 'mysqladmin ping -h 127.0.0.1 -uroot -p"$MYSQL_ROOT_PASSWORD"'
        return {
            "env": env,
            "readinessProbe": {"exec": {"command": ["sh", "-c", ping]}, "periodSeconds": 10, "timeoutSeconds": 5},
            "startupProbe": {"tcpSocket": {"port": 3306}, "periodSeconds": 5, "failureThreshold": 60},
        }


class PostgreSQL(BuiltinProvider):
    type = "postgresql"
    port = 5432
    operator = "cnpg"
    image = "postgres:16"
    data_path = "/var/lib/postgresql/data"
    ports = (("postgres", 5432),)

    def container(self, ctx, name, addon, creds):
        return {
            "env": [
                {"name": "POSTGRES_USER", "value": creds["username"]},
                _secret_env("POSTGRES_PASSWORD", name, "password"),
                {"name": "POSTGRES_DB", "value": creds["database"]},
                {"name": "PGDATA", "value": f"{self.data_path}/pgdata"},
            ],
            "readinessProbe": {
                "exec": {"command": ["sh", "-c", 'pg_isready -h 127.0.0.1 -U "$POSTGRES_USER"']},
                "periodSeconds": 10,
            },
            "startupProbe": {"tcpSocket": {"port": 5432}, "periodSeconds": 5, "failureThreshold": 60},
        }


class Redis(BuiltinProvider):
    type = "redis"
    port = 6379
    operator = "ot-redis"
    image = "redis:7"
    ports = (("redis", 6379),)

    def container(self, ctx, name, addon, creds):
        return {
            "env": [_secret_env("REDIS_PASSWORD", name, "password")],
            "command": ["redis-server"],
            # $(REDIS_PASSWORD) is expanded by the kubelet from the env above, not written here.
            "args": ["--requirepass", "$(REDIS_PASSWORD)", "--appendonly", "yes"],
            "readinessProbe": {"tcpSocket": {"port": 6379}, "periodSeconds": 10},
        }


class ZooKeeper(BuiltinProvider):
    type = "zookeeper"
    port = 2181
    image = "zookeeper:3.9"
    needs_secret = False
    ports = (("client", 2181), ("peer", 2888), ("election", 3888))

    def replicas(self, addon: Addon) -> int:
        return plan_size(self.type, addon.size).replicas

    def container(self, ctx, name, addon, creds):
        count = self.replicas(addon)
        servers = " ".join(
            f"server.{i + 1}={name}-{i}.{ctx.host(name)}:2888:3888;2181" for i in range(count)
        )
        start = 'export ZOO_MY_ID=$((${HOSTNAME##*-}+1)); exec /docker-entrypoint.sh zkServer.sh start-foreground'
        return {
            "env": [{"name": "ZOO_SERVERS", "value": servers}, {"name": "ZOO_4LW_COMMANDS_WHITELIST", "value": "ruok,srvr"}],
            "command": ["sh", "-c", start],
            "readinessProbe": {"tcpSocket": {"port": 2181}, "periodSeconds": 10},
        }


for _provider in (MySQL(), PostgreSQL(), Redis(), ZooKeeper()):
    register_provider(_provider)
