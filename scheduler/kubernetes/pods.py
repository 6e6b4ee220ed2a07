"""Pod templates shared by services and jobs: containers, variables, volumes, probes, placement."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from diceyml import HealthCheck, Job, Port, Service
from diceyml.models import InitContainer
from scheduler.kubernetes.context import RenderContext
from scheduler.kubernetes.meta import RenderError, deep_merge, is_label_key, manifest, object_name
from scheduler.resources import Allocation, allocate_resources
from scheduler.specfill import has_secret, secret_env

Workload = Service | Job
LOCATION_PREFIX = "dice/location-"  # Erda's node labels for `selectors: {location: NAME}`
STARTUP_PERIOD = 5  # seconds between startup probes; failureThreshold * this >= duration


def image_of(ctx: RenderContext, name: str, workload: Workload, what: str = "service") -> str:
    image = ctx.group.images.get(name) or workload.image
    if not image:
        raise RenderError(f"{what} '{name}': no image: give one in dice.yml or the release's image map")
    return image


def allocation_of(ctx: RenderContext, workload: Workload | InitContainer) -> Allocation:
    return allocate_resources(workload.resources, ctx.group.overcommit, ctx.runtime.workspace)


def port_name(port: Port) -> str:
    kind = port.protocol.lower() if port.protocol in ("HTTP", "HTTPS", "HTTP2", "GRPC") else port.l4_protocol.lower()
    return f"{kind}-{port.port}"[:15]


def shell(cmd: str) -> list[str]:
    return ["sh", "-c", cmd]


def probes(check: HealthCheck | None) -> dict[str, Any]:
    """Readiness, liveness and a startup probe that allows `duration` seconds to become healthy."""
    if check is None:
        return {}
    if check.http is not None:
        handler: dict[str, Any] = {"httpGet": {"port": check.http.port, "path": check.http.path}}
    else:
        assert check.exec is not None
        handler = {"exec": {"command": shell(check.exec.cmd)}}
    out = {
        "readinessProbe": {**handler, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {**handler, "periodSeconds": 15, "timeoutSeconds": 5, "failureThreshold": 6},
    }
    if check.duration > 0:
        out["startupProbe"] = {
            **handler,
            "periodSeconds": STARTUP_PERIOD,
            "timeoutSeconds": 5,
            "failureThreshold": max(1, math.ceil(check.duration / STARTUP_PERIOD)),
        }
    return out


class PodBuilder:
    """Collects the volumes of one pod while its containers are made."""

    def __init__(self, ctx: RenderContext, name: str, workload: Workload):
        self.ctx, self.name, self.workload = ctx, name, workload
        self.volumes: list[dict[str, Any]] = []
        self.main_mounts: list[dict[str, Any]] = []
        self.claims: list[dict[str, Any]] = []
        self.secrets: list[dict[str, Any]] = []

    def storage(self, replicas: int) -> None:
        """hostPath binds and one PersistentVolumeClaim per volume."""
        for i, bind in enumerate(self.workload.binds):
            vol = f"bind-{i}"
            self.volumes.append({"name": vol, "hostPath": {"path": bind.host}})
            self.main_mounts.append({"name": vol, "mountPath": bind.container, "readOnly": bind.type == "ro"})
        for i, volume in enumerate(self.workload.volumes):
            vol = f"data-{i}"
            claim = object_name(self.name, volume.name)
            spec: dict[str, Any] = {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": f"{volume.size or 10}Gi"}},
            }
            if self.ctx.cluster.storage_class:
                spec["storageClassName"] = self.ctx.cluster.storage_class
            self.claims.append(
                manifest(
                    "v1",
                    "PersistentVolumeClaim",
                    claim,
                    self.ctx.namespace,
                    self.ctx.labels(self.name, "storage"),
                    spec=spec,
                )
            )
            self.volumes.append({"name": vol, "persistentVolumeClaim": {"claimName": claim}})
            self.main_mounts.append({"name": vol, "mountPath": volume.target_path, "readOnly": volume.read_only})
            if replicas > 1:
                self.ctx.warnings.append(
                    f"{self.name}: volume {volume.name} is ReadWriteOnce but {replicas} replicas share it"
                )

    def extra_container(self, cname: str, spec: InitContainer) -> dict[str, Any]:
        """A sidecar or init container as given; shared_dirs become emptyDir volumes. A sidecar
        without `image` takes it from the release's image map: `<service>.<sidecar>`, else `<sidecar>`."""
        images = self.ctx.group.images
        image = spec.image or images.get(f"{self.name}.{cname}") or images.get(cname)
        if not image:
            raise RenderError(
                f"service '{self.name}': sidecar '{cname}' has no image: give one in dice.yml or the "
                f"release's image map ('{self.name}.{cname}')"
            )
        container: dict[str, Any] = {"name": cname, "image": image}
        if spec.cmd:
            container["command"] = shell(spec.cmd)
        allocation = allocation_of(self.ctx, spec)
        container["env"] = self.ctx.env(self.name, allocation, spec.envs)
        if self.ctx.env_from():
            container["envFrom"] = self.ctx.env_from()
        container["resources"] = allocation.kubernetes()
        mounts = []
        for i, shared in enumerate(spec.shared_dirs):
            vol = object_name("shared", cname, str(i))
            self.volumes.append({"name": vol, "emptyDir": {}})
            self.main_mounts.append({"name": vol, "mountPath": shared.main})
            mounts.append({"name": vol, "mountPath": shared.sidecar})
        if mounts:
            container["volumeMounts"] = mounts
        return container

    def pull_secrets(self, service: Service, image: str) -> list[dict[str, str]]:
        if not service.image_username or not service.image_password:
            return []
        # ((KEY)) in the credentials names a project config: filled here, it lives only in the Secret
        username, password = (
            secret_env(value, self.ctx.group.secret_configs, f"{self.name}: {field}") if has_secret(value) else value
            for field, value in (("image_username", service.image_username), ("image_password", service.image_password))
        )
        first = image.split("/")[0]
        registry = first if ("." in first or ":" in first or first == "localhost") and "/" in image else "https://index.docker.io/v1/"
        auth = base64.b64encode(f"{username}:{password}".encode()).decode()
        config = {"auths": {registry: {"username": username, "password": password, "auth": auth}}}
        name = object_name(self.name, "registry")
        self.secrets.append(
            manifest(
                "v1",
                "Secret",
                name,
                self.ctx.namespace,
                self.ctx.labels(self.name, "service"),
                type="kubernetes.io/dockerconfigjson",
                data={".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
            )
        )
        return [{"name": name}]

    def pod_spec(self, main: dict[str, Any], sidecars: list[dict], inits: list[dict]) -> dict[str, Any]:
        mounts = main.get("volumeMounts", []) + self.main_mounts
        if mounts:
            main["volumeMounts"] = mounts
        spec: dict[str, Any] = {"containers": [main, *sidecars], "enableServiceLinks": False}
        if inits:
            spec["initContainers"] = inits
        if self.volumes:
            spec["volumes"] = self.volumes
        return spec


def main_container(
    ctx: RenderContext, name: str, workload: Workload, image: str, allocation: Allocation, port: int | None
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": image}
    if workload.cmd:
        container["command"] = shell(workload.cmd)
    container["env"] = ctx.env(name, allocation, {}, port)
    if ctx.env_from():
        container["envFrom"] = ctx.env_from()
    container["resources"] = allocation.kubernetes()
    return container


def placement(service: Service, selector: dict[str, str]) -> dict[str, Any]:
    """Affinity from deployments.policies and .selectors."""
    term = {"labelSelector": {"matchLabels": selector}, "topologyKey": "kubernetes.io/hostname"}
    policy = service.deployments.policies
    affinity: dict[str, Any] = {}
    if policy == "unique":
        affinity["podAntiAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": [term]}
    elif policy == "shuffle":
        affinity["podAntiAffinity"] = {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": term}]
        }
    elif policy == "affinity":
        affinity["podAffinity"] = {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": term}]
        }
    expressions, locations = [], []
    for key, values in sorted(service.deployments.selectors.items()):
        if key == "location" and values:
            # Erda's location selector: nodes labelled dice/location-<value>=true (set on the
            # cluster page); several values are alternatives.
            bad = [v for v in values if not is_label_key(f"{LOCATION_PREFIX}{v}")]
            if bad:
                raise RenderError(f"deployments.selectors.location: {', '.join(map(repr, bad))} cannot be "
                                  "part of a node label name (letters, digits, '-', '.', '_'; at most 54)")
            locations = values
        elif values:
            expressions.append({"key": key, "operator": "In", "values": values})
        else:
            expressions.append({"key": key, "operator": "Exists"})
    terms = [{"matchExpressions": [*expressions, {"key": f"{LOCATION_PREFIX}{loc}", "operator": "In",
                                                   "values": ["true"]}]} for loc in locations]
    if not terms and expressions:
        terms = [{"matchExpressions": expressions}]
    if terms:
        affinity["nodeAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}
    return affinity


def host_aliases(service: Service) -> list[dict[str, Any]]:
    by_ip: dict[str, list[str]] = {}
    for entry in service.hosts:
        ip, *names = entry.split()
        by_ip.setdefault(ip, []).extend(n for n in names if n not in by_ip.get(ip, []))
    return [{"ip": ip, "hostnames": names} for ip, names in by_ip.items()]


def merge_snippet(container: dict[str, Any], service: Service) -> dict[str, Any]:
    if service.k8s_snippet and service.k8s_snippet.container:
        return deep_merge(container, service.k8s_snippet.container)
    return container
