"""From a ServiceGroup to local units: what each service and addon runs, with which variables."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path

from diceyml.placeholders import SECRET, has_secret
from scheduler.base import ExecutorError, JobEnv, ServiceGroup
from scheduler.envvars import (
    Endpoint,
    data_job_env,
    discovery_envs,
    job_env,
    self_envs,
)
from scheduler.local import addons as addon_mod
from scheduler.local.cron import parse_cron
from scheduler.local.health import Probe
from scheduler.local.sandbox import TenantBox
from scheduler.local.state import PortBook
from scheduler.resources import allocate_resources
from scheduler.specfill import (
    check_secret_placeholders,
    with_addon_options,
    with_platform_values,
)

HOST = "127.0.0.1"
MASK_ENV = "DICE_MASK"  # the values the shim masks in a process's log (JSON); not passed to the process


def check_group(group: ServiceGroup, search_path: list[str]) -> None:
    """Everything that can be refused is refused before anything starts."""
    group = with_platform_values(group, "local")
    check_secret_placeholders(group)
    spec = group.spec
    for name, svc in spec.services.items():
        if not svc.cmd.strip():
            image = group.images.get(name) or svc.image
            seen = f" (image {image!r} is recorded but cannot run here)" if image else ""
            raise ExecutorError(
                f"service {name!r} has no cmd: the local cluster runs commands, not container images{seen}; "
                "give it a cmd, e.g. `cmd: python3 app.py`"
            )
        if name in spec.addons:
            raise ExecutorError(f"{name!r} is both a service and an addon; the local cluster needs distinct names")
    for name, job in spec.jobs.items():
        if job.engine:  # routed to the workspace's data cluster of its engine before it gets here
            raise ExecutorError(f"job {name!r} has `engine: {job.engine}` and the workspace has no {job.engine} "
                                "data cluster: bind one to the workspace (its edit page, or `dice workspace set "
                                "ORG/PROJECT WORKSPACE --data-cluster NAME`)")
        if job.schedule:
            if not job.cmd.strip():
                raise ExecutorError(f"job {name!r} has no cmd: the local cluster runs commands, not images")
            parse_cron(job.schedule)
    addon_mod.check_available(spec.addons, search_path, group.cluster_name or "local")


def _probe(svc) -> Probe:
    check = svc.health_check
    declared = [p.port for p in svc.ports]
    if check is not None and check.http is not None:
        port = check.http.port
        if port not in declared:
            raise ExecutorError(
                f"service health check uses port {port}, which is not one of its ports {declared}"
            )
        return Probe("http", port_index=declared.index(port), path=check.http.path, duration=check.http.duration)
    if check is not None and check.exec is not None:
        return Probe("exec", command=check.exec.cmd, duration=check.exec.duration)
    if declared:
        return Probe("tcp", port_index=_default_index(svc))
    return Probe("none")


def _default_index(svc) -> int:
    default = svc.default_port
    return next(i for i, p in enumerate(svc.ports) if p is default) if default is not None else 0


def mask_values(group: ServiceGroup, env: dict[str, str]) -> list[str]:
    """The secret values a workload's log must not show (the shim masks them, agent/masking.py):
    the console's secret variables and the project configs its `((KEY))` placeholders name."""
    configs = {key for value in env.values() if has_secret(value) for key in _placeholders(value)}
    values = {*group.secret_variables.values(), *(group.secret_configs[k] for k in configs if k in group.secret_configs)}
    return sorted(v for v in values if v)


def _placeholders(value: str) -> list[str]:
    return SECRET.findall(str(value))


def _hash(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def plan_group(
    group: ServiceGroup,
    *,
    ns: str,
    runtime_dir: Path,
    ports: PortBook,
    search_path: list[str],
    addon_user: str,
    cluster_name: str,
    box: TenantBox | None = None,
) -> tuple[dict[str, dict], dict[str, dict]]:
    """(units, cron entries) of the group. Units are services and addons, as the supervisor runs
    them; with `box` (the organization's sandbox) each unit says what its sandbox binds.

    `${platform.X}` is filled from the runtime; `((KEY))` in envs from group.secret_configs (the
    process's environment is its own: the value is not written anywhere else)."""
    group = with_addon_options(with_platform_values(group, cluster_name))
    spec = group.spec
    runtime = group.runtime
    cluster = group.cluster_name or cluster_name
    units: dict[str, dict] = {}

    addon_plans = {}
    for name, addon in spec.addons.items():
        port = ports.get(f"{ns}/addon/{name}/0") if addon.type != "custom" else 0
        addon_plans[name] = addon_mod.plan_addon(
            name, addon, runtime_dir / "addons" / name, port, group.addon_secrets.get(name), search_path, addon_user,
            box,
        )
    addon_env: dict[str, str] = {}
    for plan in addon_plans.values():
        addon_env.update(plan.envs())

    # Other services are reached through their stable front ports, ordered with the default first.
    fronts: dict[str, list[int]] = {}
    endpoints: dict[str, Endpoint] = {}
    for name, svc in spec.services.items():
        if not svc.ports:
            continue
        fronts[name] = [ports.get(f"{ns}/service/{name}/{i}") for i in range(len(svc.ports))]
        order = [_default_index(svc)] + [i for i in range(len(svc.ports)) if i != _default_index(svc)]
        endpoints[name] = Endpoint(HOST, tuple(fronts[name][i] for i in order))
    discovery = discovery_envs(endpoints)

    for name, plan in addon_plans.items():
        if not plan.argv:
            continue
        units[name] = {
            "kind": "addon",
            "name": name,
            "type": plan.type,
            "argv": plan.argv,
            "cwd": plan.cwd or "/",
            "env": dict(plan.env),
            "user": plan.user,
            "stop_signal": int(plan.stop_signal),
            "fixed_ports": [int(plan.values["port"])],
            "declared_ports": [int(plan.values["port"])],
            "front_ports": [],
            "replicas": 1,
            "probe": Probe("tcp", duration=300).to_dict(),
            "depends_on": [],
            "values": {k: v for k, v in plan.values.items() if k != "password"},
        }
        if box is not None:
            addon_dir = runtime_dir / "addons" / name
            binds = [[str(addon_dir), str(addon_dir), "rw"]]
            data = addon_dir / "data"
            if data.is_symlink():  # kept outside the state directory before the sandbox: mount it too
                target = str(data.resolve())
                binds.append([target, target, "rw"])
            units[name]["sandbox"] = {"tenant": box.tenant, "binds": binds}
        units[name]["hash"] = _hash(plan.argv, plan.user, plan.cwd)

    workdir = str(Path(group.workdir).resolve()) if group.workdir else str(runtime_dir / "work")
    Path(workdir).mkdir(parents=True, exist_ok=True)
    if box is not None:  # the release's files, unpacked by the console: the tenant's to write
        box.own(workdir, recursive=os.lstat(workdir).st_uid != box.uid)
    sandbox = {"tenant": box.tenant, "binds": [[workdir, workdir, "rw"]]} if box is not None else None
    for name, svc in spec.services.items():
        alloc = allocate_resources(svc.resources, group.overcommit, runtime.workspace)
        # The console's variables win over the file's envs, discovery and addons; the platform's
        # own (DICE_*, SELF_*) win over all (the console refuses those names). Their values are
        # literal: no `((KEY))` filling.
        env = job_env(group, name, {**discovery, **addon_env}, self_envs(runtime, name, HOST, None, cluster, alloc))
        declared = [p.port for p in svc.ports]
        if declared:
            # Declared ports keep their numbers in the file; locally each replica gets free ones.
            env["DICE_DECLARED_PORTS"] = ",".join(str(p) for p in declared)
        argv = ["/bin/sh", "-c", svc.cmd]
        probe = _probe(svc)
        units[name] = {
            "kind": "service",
            "name": name,
            "image": group.images.get(name) or svc.image,
            "argv": argv,
            "cwd": workdir,
            "env": env,
            "user": "",
            "stop_signal": int(signal.SIGTERM),
            "declared_ports": declared,
            "front_ports": fronts.get(name, []),
            "replicas": svc.deployments.replicas,
            "probe": probe.to_dict(),
            "mem_mib": alloc.mem_limit,
            "cpu": alloc.cpu_limit,
            "mem_request_mib": alloc.mem_request,  # what the cluster page and resource report count
            "cpu_request": alloc.cpu_request,
            "depends_on": [*svc.depends_on, *(a for a in addon_plans if addon_plans[a].argv)],
            # names only (drift tells a variable removed in the console from one of the file's)
            "variables": sorted(group.console_variables()),
            "mask": mask_values(group, {**discovery, **addon_env, **spec.service_envs(name)}),
        }
        if sandbox is not None:
            units[name]["sandbox"] = sandbox
        if (scaling := svc.deployments.autoscale) is not None:
            units[name]["replicas"] = scaling.clamp(svc.deployments.replicas)
            units[name]["autoscale"] = {"min": scaling.min, "max": scaling.max, "cpu_percent": scaling.cpu_percent,
                                        "mem_percent": scaling.mem_percent, "cpu_request": alloc.cpu_request,
                                        "mem_request": alloc.mem_request}
        units[name]["hash"] = _hash(argv, workdir, env, declared, probe.to_dict(), alloc.mem_limit)

    cron: dict[str, dict] = {}
    for name, job in spec.jobs.items():
        if not job.schedule or job.engine:  # an engine's job runs on the data cluster (job_envs)
            continue
        alloc = allocate_resources(job.resources, group.overcommit, runtime.workspace)
        masked = mask_values(group, {**discovery, **addon_env, **spec.service_envs(name)})
        cron[name] = {
            "schedule": job.schedule,
            "command": ["/bin/sh", "-c", job.cmd],
            "envs": {**job_env(group, name, {**discovery, **addon_env}, self_envs(runtime, name, HOST, None, cluster, alloc)),
                     **({MASK_ENV: json.dumps(masked)} if masked else {})},
            "workdir": workdir,
            "mem": alloc.mem_limit,
            "cpu": alloc.cpu_limit,
            "timeout": job.active_deadline,
            "tenant": runtime.org,
        }
    return units, cron


def engine_job_envs(group: ServiceGroup, ports: PortBook, ns: str, runtime_dir: Path,
                    cluster_name: str) -> dict[str, JobEnv]:
    """The environment of each data engine's job of the group (`engine: spark|flink`) as this
    cluster gives its own jobs (its addons' variables and service discovery: the addresses on this
    machine, where the data clusters' clients run; the file's envs, configs, console variables),
    with the names whose values are secret (scheduler.envvars.data_job_env)."""
    group = with_addon_options(with_platform_values(group, cluster_name))
    jobs = [name for name, job in group.spec.jobs.items() if job.engine]
    if not jobs:
        return {}
    shared: dict[str, str] = {}
    secret: set[str] = set()
    for name, addon in group.spec.addons.items():
        port = ports.get(f"{ns}/addon/{name}/0") if addon.type != "custom" else 0
        envs, names = addon_mod.connection_envs(name, addon, runtime_dir / "addons" / name, port,
                                                group.addon_secrets.get(name))
        shared.update(envs)
        secret |= names
    endpoints = {}
    for name, svc in group.spec.services.items():
        if svc.ports and not svc.engine:
            index = _default_index(svc)
            order = [index] + [i for i in range(len(svc.ports)) if i != index]
            endpoints[name] = Endpoint(HOST, tuple(ports.get(f"{ns}/service/{name}/{i}") for i in order))
    shared = {**discovery_envs(endpoints), **shared}
    cluster = group.cluster_name or cluster_name
    return {name: data_job_env(group, name, shared, secret, cluster) for name in jobs}
