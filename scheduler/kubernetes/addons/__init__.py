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

Operators (the names `dice spec render --operators` takes, and the CRDs they stand for; the
table is scheduler/kubernetes/catalog.py):

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

import secrets

from diceyml import Addon, DiceYml
from scheduler.envvars import ADDON_VARIABLES, SECRET_FIELDS, env_name
from scheduler.kubernetes.addons import builtin, operators
from scheduler.kubernetes.addons.base import SECRET_WORDS, AddonProvider, secret_manifest, secret_name
from scheduler.kubernetes.context import RenderContext
from scheduler.kubernetes.meta import RenderError

# Addon type -> its provider: the operator-backed one where there is one (it falls back to the
# built-in StatefulSet when the cluster lacks the operator), else the built-in.
PROVIDERS: dict[str, AddonProvider] = {
    provider.type: provider
    for provider in (*builtin.PROVIDERS, *operators.PROVIDERS)  # later ones win
}


def provider_for(addon_type: str) -> AddonProvider | None:
    return PROVIDERS.get(addon_type)


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
