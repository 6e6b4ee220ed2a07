"""What the renderer's parts share while turning one ServiceGroup into manifests."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any

from scheduler.base import ClusterRef, RuntimeRef, ServiceGroup
from scheduler.envvars import Endpoint, discovery_envs, self_envs
from scheduler.kubernetes.meta import common_labels, manifest
from scheduler.resources import Allocation
from scheduler.specfill import has_secret, secret_env

CONFIG_SECRET = "dice-configs"  # the runtime's env values filled from ((KEY)) project configs


def config_secret(ctx: RenderContext) -> dict[str, Any]:
    """The Secret holding the env values filled from `((KEY))` project configs."""
    data = {k: base64.b64encode(v.encode()).decode() for k, v in sorted(ctx.config_values.items())}
    return manifest("v1", "Secret", CONFIG_SECRET, ctx.namespace, ctx.labels(CONFIG_SECRET, "config"), data=data)


@dataclass
class RenderContext:
    group: ServiceGroup
    cluster: ClusterRef
    namespace: str
    operators: frozenset[str] = frozenset()
    warnings: list[str] = field(default_factory=list)
    # Addons that run as the built-in StatefulSet already: they stay built-in even when the
    # operator's CRD has appeared since (moving the data is an explicit migration).
    keep_builtin: frozenset[str] = frozenset()
    # Filled by the renderer before workloads are made:
    discovery: dict[str, str] = field(default_factory=dict)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    addon_plain: dict[str, str] = field(default_factory=dict)
    addon_secret_refs: dict[str, tuple[str, str]] = field(default_factory=dict)  # env -> (secret, key)
    # Env values filled from `((KEY))` project configs, by key of the runtime's config Secret.
    config_values: dict[str, str] = field(default_factory=dict)

    @property
    def runtime(self) -> RuntimeRef:
        return self.group.runtime

    @property
    def release(self) -> str:
        return self.group.release

    def labels(self, name: str, component: str) -> dict[str, str]:
        return common_labels(self.runtime, self.release, name=name, component=component)

    def host(self, name: str) -> str:
        """The in-cluster DNS name of a Service of this runtime."""
        return f"{name}.{self.namespace}.svc.cluster.local"

    def node_selector(self, kind: str) -> dict[str, str]:
        """The node labels a workload of `kind` ("stateless", "stateful", "job") must land on:
        what the cluster's operators require (ServiceGroup.node_selectors)."""
        return dict(self.group.node_selectors.get(kind) or {})

    def has_operator(self, *names: str) -> bool:
        return any(n in self.operators for n in names)

    def set_discovery(self, endpoints: dict[str, Endpoint]) -> None:
        self.endpoints = dict(endpoints)
        self.discovery = discovery_envs(endpoints)

    def _env_item(self, workload: str, name: str, value: str) -> dict[str, Any]:
        """`{name, value}`; a value with `((KEY))` placeholders is filled and read from a Secret."""
        if not has_secret(value):
            return {"name": name, "value": value}
        filled = secret_env(value, self.group.secret_configs, f"{workload}: env {name}")
        key = "c-" + hashlib.sha256(filled.encode()).hexdigest()[:20]
        self.config_values[key] = filled
        return {"name": name, "valueFrom": {"secretKeyRef": {"name": CONFIG_SECRET, "key": key}}}

    def env(
        self,
        workload: str,
        allocation: Allocation,
        own: dict[str, str],
        port: int | None = None,
    ) -> list[dict[str, Any]]:
        """The container's variables: discovery, addons, SELF_*/DICE_*, then the file's envs on top.

        Variables a user sets in dice.yml win over the ones the platform provides.
        """
        selfs = self_envs(
            self.runtime,
            workload,
            self.host(workload),
            port,
            self.group.cluster_name or self.cluster.name,
            allocation,
        )
        user = self.group.spec.service_envs(workload) if workload else {}
        plain = {**self.discovery, **self.addon_plain, **selfs, **user, **own}
        out: list[dict[str, Any]] = [self._env_item(workload, k, v) for k, v in plain.items()]
        for name, (secret, key) in self.addon_secret_refs.items():
            if name not in plain:
                out.append({"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
        return out
