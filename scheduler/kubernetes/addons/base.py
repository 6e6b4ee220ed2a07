"""What every addon provider shares: plan sizes, the provider base class, the credentials Secret,
and the table of providers by type (filled by builtin.py and operators.py)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from diceyml import Addon
from scheduler.kubernetes.catalog import OPERATORS
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
    operator: str | None = None  # key of scheduler.kubernetes.catalog.OPERATORS
    builtin: bool = False
    default_username: str = "dice"
    needs_secret: bool = True  # has a password (one Secret per instance)

    def crds(self) -> tuple[str, ...]:
        return OPERATORS[self.operator].crds if self.operator else ()

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
