"""Status of a local runtime from its state: replicas, readiness, health with a reason."""

from __future__ import annotations

import time

from scheduler.base import GroupStatus, Health, ReplicaStatus, RuntimeRef, ServiceStatus
from scheduler.local.state import alive

_ORDER = {Health.HEALTHY: 0, Health.PROGRESSING: 1, Health.UNKNOWN: 2, Health.DEGRADED: 3, Health.MISSING: 4}


def _replica(unit: dict, key: str, slot: dict) -> ReplicaStatus:
    name = f"{unit['name']}-{key}"
    rec = slot.get("current")
    restarts = slot.get("restarts", 0)
    if rec and alive(rec["pid"], rec.get("start_time")):
        ready = bool(rec.get("ready"))
        state = "Running" if ready else "Starting"
        address = f"127.0.0.1:{rec['ports'][0]}" if rec.get("ports") else ""
        return ReplicaStatus(name=name, ready=ready, restarts=restarts, state=state, address=address)
    if slot.get("waiting"):
        return ReplicaStatus(name=name, ready=False, restarts=restarts, state=f"Pending (waiting for {slot['waiting']})")
    if slot.get("failures", 0) >= 2 and slot.get("backoff_until", 0) > time.time():
        return ReplicaStatus(name=name, ready=False, restarts=restarts, state="CrashLoopBackOff")
    if slot.get("last_exit"):
        code = slot.get("last_exit_code")
        return ReplicaStatus(name=name, ready=False, restarts=restarts,
                             state=f"exited({code})" if code is not None else slot["last_exit"])
    return ReplicaStatus(name=name, ready=False, restarts=restarts, state="Pending")


def unit_status(unit: dict) -> ServiceStatus:
    desired = unit["replicas"]
    slots = unit.get("slots", {})
    replicas = tuple(_replica(unit, k, slots[k]) for k in sorted(slots, key=int) if int(k) < desired)
    ready = sum(r.ready for r in replicas)
    updated = sum(
        1
        for k, s in slots.items()
        if int(k) < desired and s.get("current") and s["current"].get("hash") == unit["hash"]
        and s["current"].get("token", 0) == unit.get("token", 0)
    )
    url = f"http://127.0.0.1:{unit['front_ports'][0]}" if unit.get("front_ports") else ""
    if unit["kind"] == "addon":
        url = f"127.0.0.1:{unit['fixed_ports'][0]}"
    health, reason = _health(unit, desired, ready, updated, slots)
    return ServiceStatus(name=unit["name"], desired=desired, updated=updated, ready=ready, available=ready,
                         health=health, reason=reason, url=url, replicas=replicas)


def _health(unit: dict, desired: int, ready: int, updated: int, slots: dict) -> tuple[Health, str]:
    looping = [s for k, s in slots.items() if int(k) < desired and s.get("failures", 0) >= 2]
    if looping:
        worst = max(looping, key=lambda s: s.get("restarts", 0))
        return Health.DEGRADED, f"crash looping: {worst.get('last_exit') or 'exited'}, {worst['restarts']} restarts"
    unhealthy = [
        s["current"] for k, s in slots.items()
        if int(k) < desired and s.get("current") and not s["current"].get("ready")
        and s["current"].get("ever_ready")
    ]
    if unhealthy:
        return Health.DEGRADED, f"health check failing: {unhealthy[0].get('probe_message', '')}"
    if unit.get("front_error"):
        return Health.DEGRADED, f"front port unavailable: {unit['front_error']}"
    if ready >= desired and updated >= desired:
        return Health.HEALTHY, ""
    waiting = sorted({s["waiting"] for s in slots.values() if s.get("waiting")})
    if waiting:
        return Health.PROGRESSING, f"waiting for {', '.join(waiting)}"
    if ready < desired:
        return Health.PROGRESSING, f"{ready}/{desired} replicas ready"
    return Health.PROGRESSING, f"{updated}/{desired} replicas updated"


def group_status(runtime: RuntimeRef, rt: dict | None) -> GroupStatus:
    if rt is None:
        return GroupStatus(runtime=runtime, health=Health.MISSING, reason="the runtime does not exist")
    services, addons = {}, {}
    for unit in rt["units"].values():
        status = unit_status(unit)
        (addons if unit["kind"] == "addon" else services)[unit["name"]] = status
    worst, reason = Health.HEALTHY, ""
    for status in [*addons.values(), *services.values()]:
        if _ORDER[status.health] > _ORDER[worst]:
            worst, reason = status.health, f"{status.name}: {status.reason}"
    return GroupStatus(runtime=runtime, health=worst, reason=reason, services=services, addons=addons)
