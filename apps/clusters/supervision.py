"""Which worker supervises the clusters that run on this machine.

A kind whose processes run here (the local kind) is supervised by one process per state root at a
time: its executor takes the root's lock, and another process's executor can read status and logs
but refuses changes (`leader` is False). Two workers on one machine are therefore one that works
and one standby: a worker started from the command line waits, before it consumes any message,
until its executors lead every such cluster; when the working one dies (its lock goes with it) the
standby takes over within POLL seconds, re-adopts the running processes, and the reconcilers sent
at its start resume what the dead one was doing."""

from __future__ import annotations

import logging
import threading
import time

from apps.clusters.models import Cluster
from apps.clusters.services import capabilities, cluster_executor
from scheduler.base import ExecutorError

log = logging.getLogger(__name__)

POLL = 0.2  # seconds between attempts to take over from the supervising process


def machine_executors() -> list:
    """Executors of the clusters that run on this machine and are supervised by one process at a
    time (they say so with a `leader` attribute)."""
    found = []
    for cluster in Cluster.objects.all():
        caps = capabilities(cluster)
        if not caps.console_filesystem or caps.data_engine:
            continue
        try:
            executor = cluster_executor(cluster)
        except ExecutorError as exc:
            log.warning("cluster %s: %s", cluster.name, exc)
            continue
        if hasattr(executor, "leader"):
            found.append((cluster.name, executor))
    return found


def supervises_all(executors: list) -> bool:
    """True once this process leads every executor; tries to take over each one it does not."""
    leading = True
    for _, executor in executors:
        if executor.leader:
            continue
        try:
            executor.tick()  # takes the root over when its supervisor is gone, else refuses
        except ExecutorError:
            leading = False
    return leading


def wait_to_supervise(say=None, poll: float = POLL, stop: threading.Event | None = None) -> float:
    """Block until this process supervises the machine's clusters (at once when no other process
    does). Returns the seconds waited."""
    started = time.monotonic()
    executors = machine_executors()
    told = False
    while not supervises_all(executors):
        if not told and say is not None:
            say("another worker supervises the local cluster here: standing by until it stops")
            told = True
        if stop is not None and stop.wait(poll):
            break
        if stop is None:
            time.sleep(poll)
    waited = time.monotonic() - started
    if told and say is not None:
        say(f"took over the local cluster after {waited:.1f} s on standby")
    return waited
