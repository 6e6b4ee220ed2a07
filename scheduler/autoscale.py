"""How an autoscaled service's replica count follows its use, the way a HorizontalPodAutoscaler
decides: desired = ceil(replicas x utilisation / target), where utilisation is the measured
replicas' average use of their requested CPU (or memory), left alone within a 10% tolerance and
kept between min and max. A scale-up waits DICE_AUTOSCALE_UP_COOLDOWN seconds after the last
change of that service, a scale-down DICE_AUTOSCALE_DOWN_COOLDOWN. Both engines that scale on
their own use it: the local engine's autoscaler (local/autoscale.py) and the console's autoscaler
of Kubernetes clusters without a resource metrics API (kubernetes/autoscale.py)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from scheduler.base import RuntimeUsage

TOLERANCE = 0.1
AUTOSCALED = "Autoscaled"  # the reason of the event every change makes


def _env(names: tuple[str, ...], default: float) -> float:
    for name in names:
        if name in os.environ:
            try:
                return float(os.environ[name])
            except ValueError:
                return default
    return default


def cooldowns() -> tuple[float, float]:
    """(up, down) in seconds. DICE_LOCAL_AUTOSCALE_*_COOLDOWN, the local engine's earlier names,
    are still read."""
    return (_env(("DICE_AUTOSCALE_UP_COOLDOWN", "DICE_LOCAL_AUTOSCALE_UP_COOLDOWN"), 30.0),
            _env(("DICE_AUTOSCALE_DOWN_COOLDOWN", "DICE_LOCAL_AUTOSCALE_DOWN_COOLDOWN"), 120.0))


@dataclass(frozen=True)
class Decision:
    service: str
    current: int
    desired: int
    why: str

    @property
    def message(self) -> str:
        """The text of the event that records it."""
        return f"{self.service}: {self.current} -> {self.desired} replicas ({self.why})"


def decide(unit: dict, usage: RuntimeUsage, now: float, up_cooldown: float, down_cooldown: float) -> Decision | None:
    """What one autoscaled unit should become now, or None to leave it.

    `unit`: {"name", "replicas", "autoscale": {"min", "max", "cpu_percent", "mem_percent",
    "cpu_request" (cores per replica), "mem_request" (MiB per replica), "last_change" (epoch s)}}."""
    scaling = unit.get("autoscale") or {}
    current = int(unit["replicas"])
    low, high = int(scaling["min"]), int(scaling["max"])
    mine = [r for r in usage.replicas if r.service == unit["name"]]
    ratios, notes = [], []
    for resource, key, request in (("cpu", "cpu_percent", (scaling.get("cpu_request") or 0) * 1000.0),
                                   ("memory", "mem_percent", (scaling.get("mem_request") or 0) * 1024.0 * 1024.0)):
        target = scaling.get(key)
        values = [r.cpu_millicores if resource == "cpu" else r.memory_bytes for r in mine]
        values = [v for v in values if v is not None]
        if not target or not values or request <= 0:
            continue
        utilisation = sum(values) / len(values) / request * 100.0
        ratios.append(utilisation / target)
        notes.append(f"{resource} {utilisation:.0f}% of its request (target {target}%)")
    if current < low or current > high:
        desired = max(low, min(high, current))
        return Decision(unit["name"], current, desired, f"outside {low}..{high}")
    if not ratios:
        return None
    ratio = max(ratios)
    if abs(ratio - 1.0) <= TOLERANCE:
        return None
    desired = max(low, min(high, math.ceil(current * ratio)))
    if desired == current:
        return None
    last = float(scaling.get("last_change") or 0.0)
    cooldown = up_cooldown if desired > current else down_cooldown
    if now - last < cooldown:
        return None
    return Decision(unit["name"], current, desired, ", ".join(notes))
