"""Addons on Kubernetes: a provider per type, chosen by the operators the cluster has.

A provider makes an addon instance exist: the operator's custom resource when the cluster has
the operator's CRD, otherwise (mysql, redis, postgresql, zookeeper) a built-in StatefulSet with
a headless Service and a volumeClaimTemplate. A type with neither is an error naming the CRD to
install. Each instance gets one Secret, `<addon>-credentials`, holding the credentials from
ServiceGroup.addon_secrets; services read passwords from it through `secretKeyRef`, never inline.

Plan sizes (`<type>:<size>`):

| size         | replicas with the operator                              | cpu req/limit | memory  | storage |
|--------------|---------------------------------------------------------|---------------|---------|---------|
| basic        | 1                                                       | 0.5 / 1       | 1 GiB   | 10 GiB  |
| professional | 2 (postgresql, redis: primary + replica), 3 (others)   | 1 / 2         | 2 GiB   | 50 GiB  |
| ultimate     | 3 (postgresql, redis, mysql, rabbitmq), 5 (elasticsearch, kafka) | 2 / 4 | 8 GiB | 200 GiB |

Built-in StatefulSets of mysql, redis and postgresql run one instance (no replication without
an operator) with the size's resources and storage; the built-in zookeeper runs an ensemble of
the size's replicas (1, 3, 3 for zookeeper: replicas of 5 are capped at 3 as well).

Operators (the names `dice spec render --operators` takes, and the CRDs they stand for):

| name            | CRDs                                                                    | makes        |
|-----------------|-------------------------------------------------------------------------|--------------|
| cnpg            | clusters.postgresql.cnpg.io                                             | postgresql   |
| mysql-operator  | innodbclusters.mysql.oracle.com                                         | mysql        |
| ot-redis        | redis.redis.redis.opstreelabs.in, redisreplications.redis.redis.opstreelabs.in | redis |
| eck             | elasticsearches.elasticsearch.k8s.elastic.co                            | elasticsearch |
| strimzi         | kafkas.kafka.strimzi.io, kafkanodepools.kafka.strimzi.io                | kafka        |
| rabbitmq        | rabbitmqclusters.rabbitmq.com                                           | rabbitmq     |
| kruise          | broadcastjobs.apps.kruise.io                                            | broadcast jobs |
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any

from diceyml import Addon, DiceYml
from scheduler.envvars import ADDON_VARIABLES, SECRET_FIELDS, env_name
from scheduler.kubernetes.context import RenderContext
from scheduler.kubernetes.meta import ADDON_LABEL, RenderError, manifest


@dataclass(frozen=True)
class PlanSize:
    replicas: int
    cpu_request: float
    cpu_limit: float
    mem_mib: int
    storage_gib: int

    def resources(self) -> dict[str, dict[str, str]]:
        return {
            "requests": {"cpu": f"{round(self.cpu_request * 1000)}m", "memory": f"{self.mem_mib}Mi"},
            "limits": {"cpu": f"{round(self.cpu_limit * 1000)}m", "memory": f"{self.mem_mib}Mi"},
        }

    @property
    def storage(self) -> str:
        return f"{self.storage_gib}Gi"


SIZES: dict[str, PlanSize] = {
    "basic": PlanSize(1, 0.5, 1, 1024, 10),
    "professional": PlanSize(3, 1, 2, 2048, 50),
    "ultimate": PlanSize(5, 2, 4, 8192, 200),
}
# Types that want fewer replicas than the table's default for a size.
REPLICA_CAPS: dict[str, int] = {"postgresql": 3, "redis": 3, "mysql": 3, "rabbitmq": 3, "zookeeper": 3}
REPLICA_PROFESSIONAL: dict[str, int] = {"postgresql": 2, "redis": 2}

# Operator short names (for the CLI) -> the CRDs that must all be present.
OPERATORS: dict[str, tuple[str, ...]] = {
    "cnpg": ("clusters.postgresql.cnpg.io",),
    "mysql-operator": ("innodbclusters.mysql.oracle.com",),
    "ot-redis": ("redis.redis.redis.opstreelabs.in", "redisreplications.redis.redis.opstreelabs.in"),
    "eck": ("elasticsearches.elasticsearch.k8s.elastic.co",),
    "strimzi": ("kafkas.kafka.strimzi.io", "kafkanodepools.kafka.strimzi.io"),
    "rabbitmq": ("rabbitmqclusters.rabbitmq.com",),
    "kruise": ("broadcastjobs.apps.kruise.io",),
}

SECRET_WORDS = ("password", "secret", "token")


def plan_size(addon_type: str, size: str) -> PlanSize:
    base = SIZES[size]
    replicas = base.replicas
    if size == "professional":
        replicas = REPLICA_PROFESSIONAL.get(addon_type, replicas)
    replicas = min(replicas, REPLICA_CAPS.get(addon_type, replicas))
    return PlanSize(replicas, base.cpu_request, base.cpu_limit, base.mem_mib, base.storage_gib)


def secret_name(addon: str) -> str:
    return f"{addon}-credentials"


def database_name(name: str, addon: Addon) -> str:
    for key in ("create_dbs", "create_db", "database"):
        if addon.options.get(key):
            return addon.options[key].split(",")[0].strip()
    return name.replace("-", "_")


class AddonProvider:
    """Makes one addon type exist; subclasses fill in the operator and/or built-in parts."""

    type: str = ""
    port: int = 0
    operator: str | None = None  # key of OPERATORS
    builtin: bool = False
    default_username: str = "dice"
    needs_secret: bool = True  # has a password (one Secret per instance)

    def crds(self) -> tuple[str, ...]:
        return OPERATORS[self.operator] if self.operator else ()

    def use_operator(self, ctx: RenderContext) -> bool:
        crds = self.crds()
        return bool(crds) and all(c in ctx.operators for c in crds)

    def check_available(self, ctx: RenderContext, name: str) -> bool:
        """True for the operator, False for the built-in; a RenderError when neither is possible."""
        if self.use_operator(ctx):
            return True
        if self.builtin:
            return False
        crds = ", ".join(self.crds())
        raise RenderError(
            f"addon '{name}' ({self.type}) needs an operator in the cluster: install the CRD {crds} "
            f"(operator '{self.operator}'); there is no built-in {self.type}"
        )

    def host_service(self, name: str, operator: bool) -> str:
        """The Service that clients connect to."""
        return name

    def credentials(self, name: str, addon: Addon, given: dict[str, str]) -> dict[str, str]:
        if not self.needs_secret:
            return {**given}
        if "password" not in given:
            raise RenderError(f"addon '{name}' has no password in the group's addon secrets")
        out = {"username": self.default_username, "database": database_name(name, addon), **given}
        return out

    def connection(self, ctx: RenderContext, name: str, addon: Addon, creds: dict[str, str], operator: bool) -> dict[str, str]:
        host = ctx.host(self.host_service(name, operator))
        return {"host": host, "port": str(self.port), **creds}

    def secret(self, ctx: RenderContext, name: str, creds: dict[str, str], operator: bool) -> dict[str, Any]:
        data = {k: v for k, v in creds.items() if k in ("username", "password")}
        return secret_manifest(ctx, name, data)

    def render(self, ctx: RenderContext, name: str, addon: Addon, creds: dict[str, str], operator: bool) -> list[dict]:
        raise NotImplementedError


def secret_manifest(ctx: RenderContext, name: str, data: dict[str, str], type_: str = "Opaque") -> dict:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in sorted(data.items())}
    labels = {**ctx.labels(name, "addon"), ADDON_LABEL: name}
    return manifest("v1", "Secret", secret_name(name), ctx.namespace, labels, type=type_, data=encoded)


_PROVIDERS: dict[str, AddonProvider] = {}


def register_provider(provider: AddonProvider) -> None:
    _PROVIDERS[provider.type] = provider


def provider_for(addon_type: str) -> AddonProvider | None:
    _load()
    return _PROVIDERS.get(addon_type)


def _load() -> None:
    if not _PROVIDERS:
        from scheduler.kubernetes.addons import builtin, operators  # noqa: F401 - they register


def render_addons(ctx: RenderContext) -> tuple[list[dict], list[dict]]:
    """(Secrets, addon objects) of every addon; fills ctx.addon_plain and ctx.addon_secret_refs."""
    spec = ctx.group.spec
    secrets_out: list[dict] = []
    objects: list[dict] = []
    taken = set(spec.services) | set(spec.jobs)
    for name, addon in sorted(spec.addons.items()):
        prefix = env_name(addon.env_prefix)
        given = dict(ctx.group.addon_secrets.get(name, {}))
        if addon.type == "custom":
            secret_out = _custom(ctx, name, addon, prefix, given)
            if secret_out:
                secrets_out.append(secret_out)
            continue
        if name in taken:
            raise RenderError(f"addon '{name}' has the name of a service or job; rename one of them")
        provider = provider_for(addon.type)
        if provider is None:
            cluster = ctx.group.cluster_name or ctx.cluster.name
            raise RenderError(
                f"addon '{name}': cluster '{cluster}' cannot provide addon type '{addon.type}' "
                "(no provider for it on Kubernetes); use a cluster that provides it, or a custom addon"
            )
        if name in ctx.keep_builtin and provider.builtin:
            operator = False
            if provider.use_operator(ctx):
                ctx.warnings.append(f"addon '{name}' keeps its built-in StatefulSet although the operator's CRD "
                                    "is installed now: moving its data is an explicit migration (README)")
        else:
            operator = provider.check_available(ctx, name)
        creds = provider.credentials(name, addon, given)
        values = provider.connection(ctx, name, addon, creds, operator)
        for suffix, field in ADDON_VARIABLES.get(addon.type, {}).items():
            if field not in values:
                continue
            var = f"{prefix}_{suffix}"
            if field in SECRET_FIELDS:
                ctx.addon_secret_refs[var] = (secret_name(name), field)
            else:
                ctx.addon_plain[var] = values[field]
        if provider.needs_secret:
            secrets_out.append(provider.secret(ctx, name, creds, operator))
        objects += provider.render(ctx, name, addon, creds, operator)
    return secrets_out, objects


def _custom(ctx: RenderContext, name: str, addon: Addon, prefix: str, given: dict[str, str]) -> dict | None:
    """A custom addon: its options and the values given to the console become <PREFIX>_<KEY>;
    the console's values and secret-looking options are read from a Secret."""
    values = {**addon.options, **given}
    hidden = {}
    for key, value in values.items():
        var = f"{prefix}_{env_name(key)}"
        # Values given to the console are kept secret whatever their name; the file's options
        # only when their name says so.
        if key in given or any(word in key.lower() for word in SECRET_WORDS):
            hidden[key] = value
            ctx.addon_secret_refs[var] = (secret_name(name), key)
        else:
            ctx.addon_plain[var] = value
    return secret_manifest(ctx, name, hidden) if hidden else None


def generate_addon_secrets(spec: DiceYml, existing: dict[str, dict[str, str]] | None = None) -> dict[str, dict[str, str]]:
    """Credentials for every addon that has none yet (random passwords); existing ones are kept."""
    out = {k: dict(v) for k, v in (existing or {}).items()}
    for name, addon in spec.addons.items():
        if addon.type == "custom":
            continue
        creds = out.setdefault(name, {})
        creds.setdefault("password", secrets.token_urlsafe(18))
    return out
