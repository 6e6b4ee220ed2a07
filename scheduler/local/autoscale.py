"""The local engine's autoscaler: every interval it measures the runtimes whose services have
`deployments.autoscale` (local/metrics.py, as usage() does) and scales each between min and max
by scheduler/autoscale.py's rule (the HorizontalPodAutoscaler's), with its cooldowns; every change
is an `Autoscaled` event of the runtime. Only the process supervising the root runs it."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from scheduler.autoscale import AUTOSCALED, Decision, cooldowns, decide
from scheduler.base import ExecutorError, RuntimeRef

log = logging.getLogger(__name__)

__all__ = ["Autoscaler", "Decision", "decide"]


def _env(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


class Autoscaler:
    def __init__(self, executor: Any) -> None:  # the LocalExecutor that owns it
        self.executor = executor
        self.interval = _env("DICE_LOCAL_AUTOSCALE_INTERVAL", 15.0)
        self.up_cooldown, self.down_cooldown = cooldowns()
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
                    ex.event(ns, "Normal", AUTOSCALED, decision.message, decision.service)
                    made.append(decision)
                ex.save_runtime(ns)
        if made:
            ex.sup.wake.set()
        return made
