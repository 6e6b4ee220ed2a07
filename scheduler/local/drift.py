"""Drift of a local runtime: the processes and their plan as the supervisor holds them, against
what the release asks for (services present, replicas, command, the service's own variables,
the release applied, and each desired replica's process alive)."""

from __future__ import annotations

from scheduler.base import Drift, DriftItem, ServiceGroup
from scheduler.local.state import alive
from scheduler.specfill import with_platform_values


def _console_names(unit: dict) -> list[str]:
    """The console variables the unit was started with (plan_group records their names)."""
    return list(unit.get("variables") or [])


def local_drift(group: ServiceGroup, state: dict | None, cluster_name: str) -> Drift:
    """Compare the group (the runtime's release, as deployed) with the runtime's state."""
    items: list[DriftItem] = []
    units = (state or {}).get("units", {})
    if state is None:
        return Drift((DriftItem("runtime", "state", group.release, None),))
    if state.get("release") != group.release:
        items.append(DriftItem("runtime", "release", group.release, state.get("release")))
    spec = with_platform_values(group, cluster_name).spec
    for name, svc in sorted(spec.services.items()):
        unit = units.get(name)
        if unit is None or unit.get("kind") != "service":
            items.append(DriftItem(f"service {name}", "", "present", None))
            continue
        if unit.get("replicas") != svc.deployments.replicas:
            items.append(DriftItem(f"service {name}", "deployments.replicas", svc.deployments.replicas,
                                   unit.get("replicas")))
        live_cmd = (unit.get("argv") or ["", "", ""])[-1]
        if live_cmd != svc.cmd:
            items.append(DriftItem(f"service {name}", "cmd", svc.cmd, live_cmd))
        env = unit.get("env", {})
        console = group.console_variables()
        for key, value in sorted(group.variables.items()):
            if env.get(key) != value:
                items.append(DriftItem(f"service {name}", f"variables.{key}", value, env.get(key)))
        for key, value in sorted(group.secret_variables.items()):
            if env.get(key) != value:  # compared, never shown
                items.append(DriftItem(f"service {name}", f"variables.{key}", "(secret)",
                                       "(another value)" if key in env else None))
        for key in sorted(set(env) & set(_console_names(unit)) - set(console)):
            items.append(DriftItem(f"service {name}", f"variables.{key}", None, "(set)"))
        for key, value in sorted(spec.service_envs(name).items()):
            if key in console:
                continue  # the console's variable wins (compared above)
            if "((" in str(value):
                continue  # a secret config: filled at deploy time, never compared in the open
            if env.get(key) != str(value):
                items.append(DriftItem(f"service {name}", f"envs.{key}", str(value), env.get(key)))
        slots = unit.get("slots", {})
        for index in range(min(unit.get("replicas", 0), svc.deployments.replicas)):
            rec = (slots.get(str(index)) or {}).get("current")
            if not rec or not alive(rec.get("pid"), rec.get("start_time")):
                items.append(DriftItem(f"service {name}", f"replicas.{index}.process", "running", "not running"))
    for name, addon in sorted(spec.addons.items()):
        if addon.type != "custom" and name not in units:
            items.append(DriftItem(f"addon {name}", "", "present", None))
    for name, unit in sorted(units.items()):
        if name not in spec.services and name not in spec.addons:
            items.append(DriftItem(f"{unit.get('kind', 'unit')} {name}", "", None, "present"))
    return Drift(tuple(items))
