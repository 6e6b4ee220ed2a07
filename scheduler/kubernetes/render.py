"""ServiceGroup -> Kubernetes manifests in apply order; pure, shared by the driver and `dice spec render`."""

from __future__ import annotations

import base64
from collections.abc import Collection
from typing import Any

from scheduler.base import ClusterRef, ServiceGroup
from scheduler.envvars import Endpoint
from scheduler.flink.operator import DEPLOYMENT_CRD, DEPLOYMENT_GVK, NO_OPERATOR, service_deployment
from scheduler.flink.services import service_argv
from scheduler.flink.submit import parse_command
from scheduler.kubernetes.addons import render_addons
from scheduler.kubernetes.context import (
    RenderContext,
    config_secret,
    shared_env_configmap,
    variables_configmap,
    variables_secret,
)
from scheduler.kubernetes.jobs import render_engine_job, render_job
from scheduler.kubernetes.meta import SERVICE_LABEL, RenderError, manifest
from scheduler.kubernetes.services import ServiceObjects, render_service
from scheduler.resources import check_overcommit
from scheduler.specfill import (
    check_secret_placeholders,
    with_addon_options,
    with_platform_values,
    with_registry_credentials,
)

# Apply order of the kinds (anything else goes with the addons).
KIND_ORDER = (
    "Namespace",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "addon",
    "Service",
    "Deployment",
    "DaemonSet",
    "StatefulSet",
    "HorizontalPodAutoscaler",
    "Job",
    "CronJob",
    "BroadcastJob",
    "Ingress",
)


def endpoints(ctx: RenderContext) -> dict[str, Endpoint]:
    """Every service with ports, reachable at its Service's DNS name; the default port first."""
    out = {}
    for name, svc in ctx.group.spec.services.items():
        if not svc.ports:
            continue
        first = svc.default_port
        ports = [first.port] + [p.port for p in svc.ports if p is not first]  # type: ignore[union-attr]
        out[name] = Endpoint(ctx.host(name), tuple(ports))
    return out


def render_flink_service(ctx: RenderContext, name: str, svc: Any) -> dict[str, Any]:
    """An `engine: flink` service as a FlinkDeployment (application mode), where the cluster has
    the Flink operator's CRD; refused naming the service and what to do otherwise."""
    if DEPLOYMENT_CRD not in ctx.operators and DEPLOYMENT_GVK not in ctx.operators:
        raise RenderError(f"service '{name}' has `engine: flink`: " + NO_OPERATOR.format(crd=DEPLOYMENT_CRD))
    where = f"service '{name}'"
    sub = parse_command(service_argv(svc.cmd, where), f"{where}: cmd")
    labels = {**ctx.labels(name, "service"), SERVICE_LABEL: name}
    return service_deployment(name, ctx.namespace, sub, parallelism=max(1, svc.deployments.replicas),
                              image=ctx.group.images.get(name) or svc.image or "", mem=int(svc.resources.mem or 0),
                              cpu=float(svc.resources.cpu or 0), labels=labels)


def render_group(
    group: ServiceGroup,
    cluster: ClusterRef,
    *,
    operators: Collection[str] = (),
    namespace: str | None = None,
    warnings: list[str] | None = None,
    keep_builtin: Collection[str] = (),
) -> list[dict[str, Any]]:
    """The manifests of a runtime, in the order to apply them.

    `operators` names what the cluster has: CRD names (`clusters.postgresql.cnpg.io`) or
    `group/version/kind`; addons whose operator is present become its custom resources.
    `namespace` overrides the runtime's namespace (the CLI's --namespace). Notes that do not stop
    the render (an exposed port without a domain to route it) are appended to `warnings`.
    `keep_builtin` names addons that already run as the built-in StatefulSet: they stay so.
    Raises RenderError (no image, a missing operator...) or OvercommitRefused.
    """
    check_overcommit(group.runtime.workspace, group.overcommit)
    group = with_platform_values(group, cluster.name)
    check_secret_placeholders(group)
    group = with_addon_options(with_registry_credentials(group))
    ctx = RenderContext(group, cluster, namespace or group.runtime.namespace, frozenset(operators),
                        keep_builtin=frozenset(keep_builtin))
    ctx.set_discovery(endpoints(ctx))
    addon_secrets, addon_objects = render_addons(ctx)

    services = ServiceObjects()
    engine_objects: list[dict] = []
    for name, svc in group.spec.services.items():
        if svc.engine == "flink":  # a streaming job: a FlinkDeployment of the Flink operator
            engine_objects.append(render_flink_service(ctx, name, svc))
            continue
        render_service(ctx, name, svc, services)
    jobs: list[dict] = []
    for name, job in group.spec.jobs.items():
        if job.engine:  # a data engine's application: a SparkApplication where the operator is, else not here
            jobs += render_engine_job(ctx, name, job)
            continue
        claims, secrets, objs = render_job(ctx, name, job)
        services.claims += claims
        services.secrets += secrets
        jobs += objs

    ns = manifest("v1", "Namespace", ctx.namespace, None, ctx.labels(group.runtime.app, "runtime"))
    configs = [config_secret(ctx)] if ctx.config_values else []
    shared = [shared_env_configmap(ctx)] if ctx.shared_env() else []
    variables = [variables_configmap(ctx)] if group.variables else []
    variables += [variables_secret(ctx)] if group.secret_variables else []
    out = [
        ns,
        *addon_secrets,
        *configs,
        *services.secrets,
        *shared,
        *variables,
        *services.claims,
        *addon_objects,
        *services.services,
        *sorted(services.workloads, key=lambda m: KIND_ORDER.index(m["kind"])),
        *engine_objects,
        *jobs,
        *services.ingresses,
    ]
    if warnings is not None:
        warnings.extend(ctx.warnings)
    return out


def container_env(container: dict[str, Any], manifests: list[dict[str, Any]]) -> dict[str, Any]:
    """What a container's process sees, as Kubernetes resolves it: the `envFrom` ConfigMaps and
    Secrets of the rendered objects first, in order (a later source wins), then `env` on top (a
    value, or its `valueFrom` reference)."""
    maps = {m["metadata"]["name"]: m.get("data") or {} for m in manifests if m["kind"] == "ConfigMap"}
    secrets = {
        m["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in (m.get("data") or {}).items()}
        for m in manifests if m["kind"] == "Secret"
    }
    out: dict[str, Any] = {}
    for source in container.get("envFrom") or []:
        if ref := source.get("configMapRef"):
            out.update({(source.get("prefix") or "") + k: v for k, v in maps[ref["name"]].items()})
        elif ref := source.get("secretRef"):
            out.update({(source.get("prefix") or "") + k: v for k, v in secrets[ref["name"]].items()})
    for item in container.get("env") or []:
        out[item["name"]] = item.get("value", item.get("valueFrom"))
    return out
