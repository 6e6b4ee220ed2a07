"""What the renderer's parts share while turning one ServiceGroup into manifests."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from scheduler.base import ClusterRef, RuntimeRef, ServiceGroup
from scheduler.envvars import Endpoint, discovery_envs, self_envs
from scheduler.kubernetes.meta import common_labels, manifest
from scheduler.resources import Allocation
from scheduler.specfill import has_secret, secret_env

CONFIG_SECRET = "dice-configs"  # the runtime's env values filled from ((KEY)) project configs
# The runtime's shared variables (discovery <NAME>_HOST/_PORT/_PORTi and the addons' plain ones):
# rendered once per runtime and read by every container through `envFrom`. Inline, each of n
# containers carried ~4n of them: objects grew as n^2 (43 KB per Deployment at 200 services).
SHARED_ENV_CONFIGMAP = "dice-env"
# On each pod template: a digest of the shared variables, so a change of them rolls the
# workloads as a change of their inline variables did (the ConfigMap's name stays the same, so
# pods of an older ReplicaSet never reference a ConfigMap that is gone).
SHARED_ENV_ANNOTATION = "dice.io/shared-env"
# The console's variables of the application in the workspace (ServiceGroup.variables and
# .secret_variables): plain ones in a ConfigMap, secret ones in a Secret, both read through
# `envFrom` after `dice-env` (a later source wins), and their names left out of each
# container's inline `env` so that they also win over the file's envs. Never inline: a secret
# value is not in any workload, only in the Secret.
VARIABLES_CONFIGMAP = "dice-vars"
VARIABLES_SECRET = "dice-secret-vars"
VARIABLES_ANNOTATION = "dice.io/variables"


def shared_env_configmap(ctx: RenderContext) -> dict[str, Any]:
    """The ConfigMap every container reads the runtime's shared variables from."""
    return manifest("v1", "ConfigMap", SHARED_ENV_CONFIGMAP, ctx.namespace,
                    ctx.labels(SHARED_ENV_CONFIGMAP, "config"), data=dict(ctx.shared_env()))


def config_secret(ctx: RenderContext) -> dict[str, Any]:
    """The Secret holding the env values filled from `((KEY))` project configs."""
    data = {k: base64.b64encode(v.encode()).decode() for k, v in sorted(ctx.config_values.items())}
    return manifest("v1", "Secret", CONFIG_SECRET, ctx.namespace, ctx.labels(CONFIG_SECRET, "config"), data=data)


def variables_configmap(ctx: RenderContext) -> dict[str, Any]:
    """The console's plain variables of the runtime."""
    return manifest("v1", "ConfigMap", VARIABLES_CONFIGMAP, ctx.namespace,
                    ctx.labels(VARIABLES_CONFIGMAP, "config"), data=dict(sorted(ctx.group.variables.items())))


def variables_secret(ctx: RenderContext) -> dict[str, Any]:
    """The console's secret variables of the runtime."""
    data = {k: base64.b64encode(v.encode()).decode() for k, v in sorted(ctx.group.secret_variables.items())}
    return manifest("v1", "Secret", VARIABLES_SECRET, ctx.namespace, ctx.labels(VARIABLES_SECRET, "config"),
                    data=data)


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
    _shared: dict[str, str] | None = None
    _shared_digest: str = ""
    _unshared: dict[str, str] | None = None

    def shared_env(self) -> dict[str, str]:
        """The variables every container of the runtime sees with the same value: discovery, then
        the addons' plain ones (which win on a clash, as they did inline). A value with `((KEY))`
        placeholders is not shared: it goes through the config Secret, container by container.
        Fixed once the first container asks (discovery and addons are rendered before workloads)."""
        if self._shared is None:
            merged = {**self.discovery, **self.addon_plain}
            self._shared = {k: v for k, v in sorted(merged.items()) if not has_secret(v)}
        return self._shared

    def env_from(self) -> list[dict[str, Any]]:
        """A container's `envFrom`: the shared variables' ConfigMap, then the console's plain and
        secret variables (later sources win on a clash), each when there are any."""
        out: list[dict[str, Any]] = []
        if self.shared_env():
            out.append({"configMapRef": {"name": SHARED_ENV_CONFIGMAP}})
        if self.group.variables:
            out.append({"configMapRef": {"name": VARIABLES_CONFIGMAP}})
        if self.group.secret_variables:
            out.append({"secretRef": {"name": VARIABLES_SECRET}})
        return out

    def pod_annotations(self) -> dict[str, str]:
        """What each pod template carries so that a change of the shared or the console's
        variables rolls it (their objects keep their names)."""
        out = {}
        shared = self.shared_env()
        if shared:
            if not self._shared_digest:  # once per runtime: every pod template of it carries the same
                self._shared_digest = hashlib.sha256(json.dumps(shared, sort_keys=True).encode()).hexdigest()[:16]
            out[SHARED_ENV_ANNOTATION] = self._shared_digest
        if version := self.group.variables_version():
            out[VARIABLES_ANNOTATION] = version
        return out

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
        """The container's own variables: SELF_*/DICE_*, then the file's envs on top; the shared
        ones (discovery, addons) come from `env_from()`, and Kubernetes lets `env` win over
        `envFrom`, so variables a user sets in dice.yml still win over the platform's. The
        console's variables are left out here: `env_from()` brings them, so they win over all.
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
        shared = self.shared_env()
        if self._unshared is None:  # the runtime-wide variables a container still carries inline
            self._unshared = {k: v for k, v in {**self.discovery, **self.addon_plain}.items() if k not in shared}
        unshared = self._unshared
        # The console's variables come from `envFrom` and win: the names they set are not inline.
        console = self.group.console_variables()
        own_plain = {k: v for k, v in {**unshared, **selfs, **user, **own}.items() if k not in console}
        out: list[dict[str, Any]] = [self._env_item(workload, k, v) for k, v in own_plain.items()]
        for name, (secret, key) in self.addon_secret_refs.items():
            if name not in own_plain and name not in shared and name not in console:
                out.append({"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
        return out
