"""The variables a service sees at run time, the same names on every cluster kind (SPEC.md)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from diceyml.placeholders import has_secret
from scheduler.base import JobEnv, RuntimeRef, ServiceGroup
from scheduler.resources import Allocation
from scheduler.specfill import secret_env

# A console variable's name: what POSIX shells and env(1) accept, upper or lower case.
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
VARIABLE_NAME_MAX = 200
# What the platform sets in every service (self_envs, Allocation.envs, DICE_DECLARED_PORTS) and
# the local engine per replica (PORT, PORT0..n, SELF_PORT, SELF_URL): a console variable of
# that name would be overridden on one kind and win on another, so it is refused.
RESERVED_PREFIXES = ("DICE_", "SELF_")
RESERVED_NAME = re.compile(r"PORT[0-9]*")


def variable_name_problem(name: str) -> str | None:
    """Why `name` cannot be a console environment variable, or None when it can."""
    if not name:
        return "give a name"
    if len(name) > VARIABLE_NAME_MAX:
        return f"a name has at most {VARIABLE_NAME_MAX} characters"
    if not VARIABLE_NAME.fullmatch(name):
        return (f"{name!r} is not an environment variable name: letters, digits and underscores, "
                "not starting with a digit (e.g. API_URL)")
    upper = name.upper()
    if upper.startswith(RESERVED_PREFIXES) or RESERVED_NAME.fullmatch(upper):
        return (f"{name!r} is reserved: the platform sets DICE_*, SELF_* and PORT, PORT0, PORT1... "
                "in every service")
    return None


def env_name(name: str) -> str:
    """`my-svc` -> `MY_SVC`."""
    return name.upper().replace("-", "_").replace(".", "_")


@dataclass(frozen=True)
class Endpoint:
    """Where one service (or addon) of the runtime can be reached."""

    host: str
    ports: tuple[int, ...]


def discovery_envs(endpoints: Mapping[str, Endpoint]) -> dict[str, str]:
    """<NAME>_HOST, <NAME>_PORT (first port) and <NAME>_PORT0..n for every reachable service."""
    out: dict[str, str] = {}
    for name, ep in sorted(endpoints.items()):
        prefix = env_name(name)
        out[f"{prefix}_HOST"] = ep.host
        if ep.ports:
            out[f"{prefix}_PORT"] = str(ep.ports[0])
        for i, port in enumerate(ep.ports):
            out[f"{prefix}_PORT{i}"] = str(port)
    return out


def self_envs(
    runtime: RuntimeRef, service: str, host: str, port: int | None, cluster: str, allocation: Allocation
) -> dict[str, str]:
    out = {
        "SELF_HOST": host,
        "DICE_WORKSPACE": runtime.workspace.upper(),
        "DICE_RUNTIME_NAME": runtime.name,
        "DICE_PROJECT_NAME": runtime.project,
        "DICE_APPLICATION_NAME": runtime.app,
        "DICE_ORG_NAME": runtime.org,
        "DICE_SERVICE_NAME": service,
        "DICE_CLUSTER_NAME": cluster,
        **allocation.envs(),
    }
    if port is not None:
        out["SELF_PORT"] = str(port)
        out["SELF_URL"] = f"http://{host}:{port}"
    return out


# Per addon type: the variable suffixes and which credential field feeds each.
ADDON_VARIABLES: dict[str, dict[str, str]] = {
    "mysql": {"HOST": "host", "PORT": "port", "USERNAME": "username", "PASSWORD": "password", "DATABASE": "database"},
    "postgresql": {"HOST": "host", "PORT": "port", "USER": "username", "PASSWORD": "password", "DATABASE": "database"},
    "redis": {"HOST": "host", "PORT": "port", "PASSWORD": "password"},
    "elasticsearch": {"HOST": "host", "PORT": "port", "USERNAME": "username", "PASSWORD": "password"},
    "kafka": {"HOST": "host", "PORT": "port", "SERVERS": "servers"},
    "rabbitmq": {"HOST": "host", "PORT": "port", "USERNAME": "username", "PASSWORD": "password"},
    "zookeeper": {"HOST": "host", "PORT": "port"},
}

# The default prefix of each addon type's variables (`as: X` replaces it with X).
ADDON_PREFIX = {
    "mysql": "MYSQL",
    "postgresql": "POSTGRES",
    "redis": "REDIS",
    "elasticsearch": "ELASTICSEARCH",
    "kafka": "KAFKA",
    "rabbitmq": "RABBITMQ",
    "zookeeper": "ZOOKEEPER",
}

SECRET_FIELDS = frozenset({"password"})


def addon_envs(addon_type: str, prefix: str | None, values: Mapping[str, str]) -> dict[str, str]:
    """Variables of one addon from its connection values (host, port, username, password, ...).

    For `custom` addons every given value becomes <PREFIX>_<KEY>. Secret fields are included here;
    drivers that can reference a secret (Kubernetes) put them in a Secret instead of inline.
    """
    pre = env_name(prefix or ADDON_PREFIX.get(addon_type, addon_type))
    if addon_type not in ADDON_VARIABLES:
        return {f"{pre}_{env_name(k)}": str(v) for k, v in values.items()}
    return {
        f"{pre}_{suffix}": str(values[field])
        for suffix, field in ADDON_VARIABLES[addon_type].items()
        if field in values
    }


# ---- the environment of a job (on the runtime's cluster or on an engine's data cluster) ---------


def platform_envs(runtime: RuntimeRef, workload: str, cluster: str) -> dict[str, str]:
    """The platform's own variables of a workload that has no host, port or allocation of its own
    here (a data engine's job): what self_envs sets of the runtime."""
    return {
        "DICE_WORKSPACE": runtime.workspace.upper(),
        "DICE_RUNTIME_NAME": runtime.name,
        "DICE_PROJECT_NAME": runtime.project,
        "DICE_APPLICATION_NAME": runtime.app,
        "DICE_ORG_NAME": runtime.org,
        "DICE_SERVICE_NAME": workload,
        "DICE_CLUSTER_NAME": cluster,
    }


def job_env(group: ServiceGroup, name: str, shared: Mapping[str, str], platform: Mapping[str, str]) -> dict[str, str]:
    """The environment the runtime's job `name` gets, on whichever cluster runs it, in the order
    of precedence of every workload (README): `shared` (service discovery and the addons'
    variables, as the runtime's cluster gives them), below the file's envs (top-level, then the
    job's own) with `((KEY))` filled from the project configs, below the console's variables,
    below the platform's own (`platform`: DICE_*, SELF_*). A `((KEY))` with no config is an
    ExecutorError naming the job and the variable."""
    filled = {
        key: secret_env(value, group.secret_configs, f"{name}: env {key}") if has_secret(value) else value
        for key, value in {**shared, **group.spec.service_envs(name)}.items()
    }
    return {**filled, **group.console_variables(), **platform}


def job_secret_names(group: ServiceGroup, name: str, envs: Mapping[str, str], shared_secret: Iterable[str]) -> frozenset[str]:
    """The names in the job's environment `envs` (job_env's) whose values are secret: those of
    `shared_secret` (the addons' passwords among the shared variables) that neither the file's envs
    nor a console variable replaced, the file's envs whose value a `((KEY))` filled (unless a
    console variable replaced them), and the console's secret variables."""
    own = group.spec.service_envs(name)
    console = group.console_variables()
    secret = {key for key in shared_secret if key in envs and key not in own and key not in console}
    secret |= {key for key, value in own.items() if has_secret(value) and key not in console}
    secret |= {key for key in group.secret_variables if key in envs}
    return frozenset(secret)


def data_job_env(group: ServiceGroup, name: str, shared: Mapping[str, str], shared_secret: Iterable[str],
                 cluster: str) -> JobEnv:
    """The environment of the runtime's data engine's job `name` (job_env's rule, the platform's
    own variables of a workload without host or port) and its secret names (job_secret_names)."""
    envs = job_env(group, name, shared, platform_envs(group.runtime, name, cluster))
    return JobEnv(envs=envs, secret=job_secret_names(group, name, envs, shared_secret))


def engine_job_env(group: ServiceGroup, name: str) -> JobEnv:
    """The environment of a data engine's job (`engine: spark|flink`) and its secret names: what
    the runtime's cluster said its jobs see (ServiceGroup.job_envs, filled by the routing executor
    from the runtime's own cluster: its addons and services), else the same without discovery and
    addon variables."""
    given = group.job_envs.get(name)
    if given is not None:
        return JobEnv(envs=dict(given.envs), secret=frozenset(given.secret))
    return data_job_env(group, name, {}, (), group.cluster_name)
