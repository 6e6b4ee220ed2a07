"""A dice.yml service as Kubernetes objects: Deployment or DaemonSet, Service, Ingress, claims."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from diceyml import Service
from diceyml.models import EndpointPolicies
from scheduler.kubernetes.context import RenderContext
from scheduler.kubernetes.meta import SERVICE_LABEL, RenderError, dns_label, manifest, split_labels
from scheduler.kubernetes.pods import (
    PodBuilder,
    allocation_of,
    host_aliases,
    image_of,
    main_container,
    merge_snippet,
    placement,
    port_name,
    probes,
)


@dataclass
class ServiceObjects:
    secrets: list[dict] = field(default_factory=list)
    claims: list[dict] = field(default_factory=list)
    services: list[dict] = field(default_factory=list)
    workloads: list[dict] = field(default_factory=list)
    ingresses: list[dict] = field(default_factory=list)


def autoscaler(ctx: RenderContext, name: str, labels: dict[str, str], scaling) -> dict:
    """The HorizontalPodAutoscaler (autoscaling/v2) of an autoscaled service's Deployment."""
    metrics = [{"type": "Resource", "resource": {"name": resource, "target": {
        "type": "Utilization", "averageUtilization": percent}}}
        for resource, percent in (("cpu", scaling.cpu_percent), ("memory", scaling.mem_percent)) if percent]
    return manifest("autoscaling/v2", "HorizontalPodAutoscaler", name, ctx.namespace, labels, {}, spec={
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "minReplicas": scaling.min, "maxReplicas": scaling.max, "metrics": metrics,
    })


def render_service(ctx: RenderContext, name: str, svc: Service, out: ServiceObjects) -> None:
    image = image_of(ctx, name, svc)
    allocation = allocation_of(ctx, svc)
    labels = {**ctx.labels(name, "service"), SERVICE_LABEL: name}
    selector = {SERVICE_LABEL: name}
    user_labels, label_notes = split_labels({**svc.labels, **svc.deployments.labels})
    pod_labels = {**user_labels, **labels, **selector}
    annotations = {**label_notes, **svc.annotations}
    per_node = svc.deployments.workload == "per_node"
    default = svc.default_port

    pod = PodBuilder(ctx, name, svc)
    pod.storage(1 if per_node else svc.deployments.replicas)
    container = main_container(ctx, name, svc, image, allocation, default.port if default else None)
    if svc.ports:
        container["ports"] = [
            {"name": port_name(p), "containerPort": p.port, "protocol": p.l4_protocol} for p in svc.ports
        ]
    container.update(probes(svc.health_check))
    sidecars = [pod.extra_container(n, c) for n, c in svc.sidecars.items()]
    inits = [pod.extra_container(n, c) for n, c in svc.init.items()]
    waiting = wait_for_dependencies(ctx, svc)
    if waiting is not None:
        inits.insert(0, waiting)
    spec = pod.pod_spec(container, sidecars, inits)
    spec["containers"][0] = merge_snippet(spec["containers"][0], svc)
    node_selector = ctx.node_selector("stateless")
    if node_selector:
        spec["nodeSelector"] = node_selector
    affinity = placement(svc, selector)
    if affinity and not (per_node and not svc.deployments.selectors):
        if per_node:  # one pod per node already: only the node selection applies
            affinity = {k: v for k, v in affinity.items() if k == "nodeAffinity"}
        spec["affinity"] = affinity
    aliases = host_aliases(svc)
    if aliases:
        spec["hostAliases"] = aliases
    pulls = pod.pull_secrets(svc, image)
    if pulls:
        spec["imagePullSecrets"] = pulls
    if svc.resources.network.mode == "host":
        spec["hostNetwork"] = True
        spec["dnsPolicy"] = "ClusterFirstWithHostNet"

    template: dict[str, Any] = {"metadata": {"labels": pod_labels}, "spec": spec}
    if annotations or ctx.pod_annotations():
        template["metadata"]["annotations"] = {**annotations, **ctx.pod_annotations()}
    body: dict[str, Any] = {"selector": {"matchLabels": selector}, "template": template}
    if per_node:
        out.workloads.append(manifest("apps/v1", "DaemonSet", name, ctx.namespace, labels, annotations, spec=body))
    else:
        scaling = svc.deployments.autoscale
        # An autoscaled Deployment leaves `replicas` to its HorizontalPodAutoscaler (applying it
        # again at every deploy would undo the scaling).
        body = {**({} if scaling else {"replicas": svc.deployments.replicas}), "revisionHistoryLimit": 5, **body}
        out.workloads.append(manifest("apps/v1", "Deployment", name, ctx.namespace, labels, annotations, spec=body))
        if scaling is not None:
            out.workloads.append(autoscaler(ctx, name, labels, scaling))
    out.claims += pod.claims
    out.secrets += pod.secrets

    if svc.ports:
        ports = [
            {"name": port_name(p), "port": p.port, "targetPort": p.port, "protocol": p.l4_protocol}
            for p in svc.ports
        ]
        out.services.append(
            manifest(
                "v1",
                "Service",
                name,
                ctx.namespace,
                labels,
                spec={"type": "ClusterIP", "selector": selector, "ports": ports},
            )
        )
    out.ingresses += render_ingress(ctx, name, svc, labels)


def _wildcard_host(ctx: RenderContext, label: str, what: str) -> str:
    domain = ctx.cluster.wildcard_domain.strip(".")
    if not domain:
        raise RenderError(f"{what} needs the cluster's wildcard domain, and none is set (--domain)")
    return f"{label}.{domain}"


# What endpoint policies become on an NGINX ingress controller (the annotations it reads).
NGINX = "nginx.ingress.kubernetes.io/"


def policy_annotations(policies: EndpointPolicies) -> dict[str, str]:
    """Ingress annotations of an endpoint's policies: CORS and a per-address rate limit."""
    out: dict[str, str] = {}
    cors = policies.cors
    if cors is not None:
        out[NGINX + "enable-cors"] = "true"
        out[NGINX + "cors-allow-origin"] = ", ".join(cors.allow_origins)
        out[NGINX + "cors-allow-methods"] = ", ".join(cors.allow_methods)
        if cors.allow_headers:
            out[NGINX + "cors-allow-headers"] = ", ".join(cors.allow_headers)
        if cors.expose_headers:
            out[NGINX + "cors-expose-headers"] = ", ".join(cors.expose_headers)
        out[NGINX + "cors-allow-credentials"] = "true" if cors.allow_credentials else "false"
        out[NGINX + "cors-max-age"] = str(cors.max_age)
    limit = policies.rate_limit
    if limit is not None:
        out[NGINX + "limit-rps"] = str(limit.qps)
        if limit.burst is not None:
            # nginx's burst is a multiple of the rate: round the burst up to one.
            out[NGINX + "limit-burst-multiplier"] = str(max(1, -(-limit.burst // limit.qps)))
    return out


def _tls(ctx: RenderContext, name: str, hosts: list[str]) -> tuple[list[dict], dict[str, str]] | None:
    """(spec.tls, annotations) from the cluster's certificate source, or None when it has none.

    ClusterRef.config `tls_secret`: an existing certificate Secret (a wildcard one) in each
    namespace; `cert_issuer`: a cert-manager ClusterIssuer that issues `<name>-tls`."""
    secret = str(ctx.cluster.config.get("tls_secret") or "")
    issuer = str(ctx.cluster.config.get("cert_issuer") or "")
    redirect = {NGINX + "force-ssl-redirect": "true"}
    if issuer:
        return [{"hosts": hosts, "secretName": f"{name}-tls"}], {"cert-manager.io/cluster-issuer": issuer, **redirect}
    if secret:
        return [{"hosts": hosts, "secretName": secret}], redirect
    return None


def render_ingress(ctx: RenderContext, name: str, svc: Service, labels: dict[str, str]) -> list[dict]:
    """Endpoints route to the first exposed port (else the default one); exposed ports without
    endpoints get `<service>-<runtime>.<wildcard domain>` (`<service>-<port>-<runtime>...` after the first).

    Endpoints with the same policies share an Ingress (annotations apply to a whole Ingress):
    the first set is `<service>`, the next ones `<service>-2`, `<service>-3`...; with
    `traffic_security: {mode: https}` each gets TLS from the cluster's certificate source."""
    exposed = [p for p in svc.ports if p.expose]
    groups: dict[str, tuple[dict[str, str], dict[str, list[dict[str, Any]]]]] = {}

    def backend(port: int) -> dict[str, Any]:
        return {"service": {"name": name, "port": {"number": port}}}

    def rules_for(annotations: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
        key = repr(sorted(annotations.items()))
        return groups.setdefault(key, (annotations, {}))[1]

    if svc.endpoints:
        target = exposed[0] if exposed else svc.default_port
        if target is None:
            raise RenderError(f"service '{name}' has endpoints but no ports to route them to")
        for ep in svc.endpoints:
            host = ep.domain
            if ep.wildcard:
                host = _wildcard_host(ctx, host[:-2], f"service '{name}': endpoint domain '{ep.domain}'")
            if ep.backend_path != ep.path:
                ctx.warnings.append(
                    f"{name}: endpoint {ep.domain}{ep.path} -> {ep.backend_path}: path rewriting depends on the "
                    "ingress controller and is not rendered"
                )
            rules = rules_for(policy_annotations(ep.policies))
            rules.setdefault(host, []).append({"path": ep.path, "pathType": "Prefix", "backend": backend(target.port)})
    elif exposed:
        if not ctx.cluster.wildcard_domain:
            ctx.warnings.append(f"{name}: exposed ports get no Ingress without a wildcard domain (--domain)")
            return []
        for i, port in enumerate(exposed):
            label = dns_label(f"{name}-{ctx.runtime.name}" if i == 0 else f"{name}-{port.port}-{ctx.runtime.name}")
            host = _wildcard_host(ctx, label, f"service '{name}'")
            rules_for({}).setdefault(host, []).append({"path": "/", "pathType": "Prefix", "backend": backend(port.port)})
    out = []
    for i, (notes, rules) in enumerate(groups.values()):
        object_name = name if i == 0 else f"{name}-{i + 1}"
        spec: dict[str, Any] = {"rules": [{"host": h, "http": {"paths": paths}} for h, paths in rules.items()]}
        if ctx.cluster.ingress_class:
            spec = {"ingressClassName": ctx.cluster.ingress_class, **spec}
        annotations = dict(notes)
        if svc.https:
            tls = _tls(ctx, object_name, list(rules))
            if tls is None:
                ctx.warnings.append(
                    f"{name}: traffic_security https: the cluster has no certificate source "
                    "(tls_secret or cert_issuer); its Ingress is rendered without TLS"
                )
            else:
                spec["tls"], extra = tls
                annotations.update(extra)
        out.append(
            manifest(
                "networking.k8s.io/v1", "Ingress", object_name, ctx.namespace, labels, annotations or None, spec=spec
            )
        )
    return out


WAIT_IMAGE = "busybox:1.36"
WAIT_CONTAINER = "wait-for-dependencies"


def dependency_targets(ctx: RenderContext, svc: Service) -> list[tuple[str, int]]:
    """host:port of every addon of the runtime and of each service the service depends on."""
    targets: list[tuple[str, int]] = []
    for key, host in sorted(ctx.addon_plain.items()):
        port = ctx.addon_plain.get(key[: -len("_HOST")] + "_PORT", "") if key.endswith("_HOST") else ""
        if port.isdigit():
            targets.append((host, int(port)))
    for dep in svc.depends_on:
        endpoint = ctx.endpoints.get(dep)
        if endpoint is not None and endpoint.ports:
            targets.append((endpoint.host, endpoint.ports[0]))
    return list(dict.fromkeys(targets))


def wait_for_dependencies(ctx: RenderContext, svc: Service) -> dict[str, Any] | None:
    """An init container that holds the service's pods until its addons and the services it
    depends on accept connections: a Service only routes to ready pods, so a connection means
    a ready replica. This is how "addons first, then services in depends_on order, each waiting
    for its dependencies" holds on Kubernetes, where the whole group is applied in one pass."""
    targets = dependency_targets(ctx, svc)
    if not targets:
        return None
    listed = " ".join(f"{host}:{port}" for host, port in targets)
    script = (
        f'for t in {listed}; do '
        # `nc -z` where nc has it (busybox's default build); Debian's busybox nc has no -z but
        # runs a program once connected (`-e true`), which is the same test.
        'until nc -z -w 2 "${t%:*}" "${t##*:}" 2>/dev/null || nc -w 2 "${t%:*}" "${t##*:}" -e true 2>/dev/null; '
        'do echo "waiting for $t"; sleep 2; done; '
        'echo "$t is ready"; done'
    )
    return {
        "name": WAIT_CONTAINER,
        "image": str(ctx.cluster.config.get("wait_image") or WAIT_IMAGE),
        "command": ["sh", "-c", script],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "32Mi"}},
    }
