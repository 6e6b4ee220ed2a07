"""The local engine's autoscaler: every interval it measures the runtimes whose services have
`deployments.autoscale` (local/metrics.py, as usage() does) and scales each between min and max,
the way a HorizontalPodAutoscaler does: desired = ceil(replicas x utilisation / target), where
utilisation is the measured replicas' average use of their requested CPU (or memory), left alone
within a 10% tolerance. A scale-up waits DICE_LOCAL_AUTOSCALE_UP_COOLDOWN seconds after the last
change of that service, a scale-down DICE_LOCAL_AUTOSCALE_DOWN_COOLDOWN; every change is an
`Autoscaled` event of the runtime. Only the process supervising the root runs it."""

from __future__ import annotations

import logging
import math
import os
import threading
from dataclasses import dataclass
from typing import Any

from scheduler.base import ExecutorError, RuntimeRef, RuntimeUsage

log = logging.getLogger(__name__)

TOLERANCE = 0.1


def _env(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


@dataclass(frozen=True)
class Decision:
    service: str
    current: int
    desired: int
    why: str


def decide(unit: dict, usage: RuntimeUsage, now: float, up_cooldown: float, down_cooldown: float) -> Decision | None:
    """What one autoscaled unit should become now, or None to leave it."""
    scaling = unit.get("autoscale") or {}
    current = int(unit["replicas"])
    low, high = int(scaling["min"]), int(scaling["max"])
    mine = [r for r in usage.replicas if r.service == unit["name"]]
    ratios, notes = [], []
    for resource, key, request in (("cpu", "cpu_percent", scaling.get("cpu_request", 0) * 1000.0),
                                   ("memory", "mem_percent", scaling.get("mem_request", 0) * 1024.0 * 1024.0)):
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
    last = float(scaling.get("last_change", 0.0))
    cooldown = up_cooldown if desired > current else down_cooldown
    if now - last < cooldown:
        return None
    return Decision(unit["name"], current, desired, ", ".join(notes))


class Autoscaler:
    def __init__(self, executor: Any) -> None:  # the LocalExecutor that owns it
        self.executor = executor
        self.interval = _env("DICE_LOCAL_AUTOSCALE_INTERVAL", 15.0)
        self.up_cooldown = _env("DICE_LOCAL_AUTOSCALE_UP_COOLDOWN", 30.0)
        self.down_cooldown = _env("DICE_LOCAL_AUTOSCALE_DOWN_COOLDOWN", 120.0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="dice-local-autoscaler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.evaluate()
            except Exception:  # one bad pass never stops the autoscaler
                log.exception("local autoscaler")

    def evaluate(self) -> list[Decision]:
        """One pass over every autoscaled service; returns the changes made."""
        ex = self.executor
        with ex.sup.lock:
            scaled = {ns: rt["runtime"] for ns, rt in ex.sup.runtimes.items()
                      if any(u.get("autoscale") and u["kind"] == "service" for u in rt["units"].values())}
        made = []
        for ns, runtime in scaled.items():
            try:
                usage = ex.usage(RuntimeRef(**runtime))
            except ExecutorError:
                continue
            now = ex.clock()
            with ex.sup.lock:
                rt = ex.sup.runtimes.get(ns)
                if rt is None:
                    continue
                for unit in rt["units"].values():
                    if not unit.get("autoscale") or unit["kind"] != "service":
                        continue
                    decision = decide(unit, usage, now, self.up_cooldown, self.down_cooldown)
                    if decision is None:
                        continue
                    unit["replicas"] = decision.desired
                    unit["autoscale"]["last_change"] = now
                    ex.event(ns, "Normal", "Autoscaled", f"{decision.service}: {decision.current} -> "
                             f"{decision.desired} replicas ({decision.why})", decision.service)
                    made.append(decision)
                ex.save_runtime(ns)
        if made:
            ex.sup.wake.set()
        return made
