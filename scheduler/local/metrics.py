"""Measuring a local runtime's replicas from /proc: CPU and resident memory of each replica's
process tree (the sandboxed command and everything it started), restarts from the supervisor.

CPU is a rate: the tree's CPU seconds (utime + stime, and what its exited children used) between
this measurement and the previous one of the same replica, kept here per process; a replica seen
for the first time (or measured again within the window) is measured over a short window instead. Memory is the tree's RSS."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable

from scheduler.base import ReplicaUsage, RuntimeRef, RuntimeUsage

FIRST_WINDOW = 0.25  # seconds: the window of a replica's first measurement
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int) -> tuple[int, float, int] | None:
    """(ppid, CPU seconds including reaped children, start time in ticks) of a process, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    # fields[0] is field 3 (state): utime=14, stime=15, cutime=16, cstime=17, starttime=22
    ppid = int(fields[1])
    ticks = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return ppid, ticks / _TICKS, int(fields[19])


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


_TREE: tuple[float, dict[int, list[int]]] = (0.0, {})
_TREE_LOCK = threading.Lock()
TREE_FRESH = 1.0  # seconds one scan of /proc's parent links serves (a collection reads many runtimes)


def _children() -> dict[int, list[int]]:
    """pid -> its children's pids, from one scan of /proc shared by the measurements of a second
    (a replica's tree changes rarely; its CPU and memory are read fresh each time)."""
    global _TREE
    with _TREE_LOCK:
        at, tree = _TREE
        if time.monotonic() - at < TREE_FRESH:
            return tree
    tree = _scan()
    with _TREE_LOCK:
        _TREE = (time.monotonic(), tree)
    return tree


def _scan() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None:
                tree.setdefault(st[0], []).append(int(entry))
    return tree


def _tree(pid: int, children: dict[int, list[int]]) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def _sample(roots: Iterable[int]) -> dict[int, tuple[float, int, int]]:
    """root pid -> (CPU seconds of its tree, RSS bytes of its tree, the root's start time)."""
    children = _children()
    out = {}
    for root in roots:
        st = _stat(root)
        if st is None:
            continue
        cpu, rss = 0.0, 0
        for pid in _tree(root, children):
            sub = _stat(pid)
            if sub is not None:
                cpu += sub[1]
                rss += _rss(pid)
        out[root] = (cpu, rss, st[2])
    return out


class Sampler:
    """Remembers each replica's last CPU reading, so the next measurement is a rate."""

    def __init__(self) -> None:
        self._last: dict[tuple[int, int], tuple[float, float]] = {}  # (pid, start) -> (monotonic, cpu s)
        self._lock = threading.Lock()

    def measure(self, runtime: RuntimeRef, replicas: list[dict]) -> RuntimeUsage:
        """`replicas`: {"service", "replica", "pid" (0: not running), "restarts", "ready"}."""
        roots = [r["pid"] for r in replicas if r.get("pid")]
        now, first = time.monotonic(), _sample(roots)
        with self._lock:
            # no previous reading, or one too recent for a rate (CPU time moves in 10 ms ticks)
            fresh = [pid for pid, (_, _, start) in first.items()
                     if (pid, start) not in self._last or now - self._last[(pid, start)][0] < FIRST_WINDOW]
        if fresh:  # measure these over a short window
            time.sleep(FIRST_WINDOW)
            again = _sample(fresh)
            with self._lock:
                for pid, (cpu, _, start) in first.items():
                    if pid in again and again[pid][2] == start:
                        self._last[(pid, start)] = (now, cpu)
                now, first = time.monotonic(), {**first, **again}
        out = []
        with self._lock:
            for r in replicas:
                reading = first.get(r.get("pid") or -1)
                cpu_m = mem = None
                if reading is not None:
                    cpu, mem, start = reading
                    key = (r["pid"], start)
                    before = self._last.get(key)
                    if before is not None and now > before[0]:
                        cpu_m = max(0.0, (cpu - before[1]) / (now - before[0]) * 1000.0)
                    self._last[key] = (now, cpu)
                out.append(ReplicaUsage(service=r["service"], replica=r["replica"], cpu_millicores=cpu_m,
                                        memory_bytes=mem, restarts=int(r.get("restarts") or 0),
                                        ready=bool(r.get("ready"))))
            alive = {(r["pid"], first[r["pid"]][2]) for r in replicas if r.get("pid") in first}
            gone = {pid for pid in roots if pid not in first}
            for key, (seen, _) in list(self._last.items()):
                # a replica of this runtime that restarted or ended; anyone's unseen for an hour
                if (key[0] in gone or (key[0] in roots and key not in alive)) or now - seen > 3600:
                    del self._last[key]
        return RuntimeUsage(runtime=runtime, available=True, replicas=tuple(out), source="proc")


# ---- the machine -----------------------------------------------------------------------------------

_MACHINE: list[tuple[float, float, float]] = []  # (monotonic, busy CPU seconds, total CPU seconds) last read
_MACHINE_LOCK = threading.Lock()


def _cpu_times() -> tuple[float, float]:
    """(busy, total) CPU seconds of the machine since boot, from /proc/stat."""
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])
    return (total - idle) / _TICKS, total / _TICKS


def _memory_used() -> int:
    info = {}
    with open("/proc/meminfo") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            info[key] = int(rest.split()[0]) * 1024
    return info.get("MemTotal", 0) - info.get("MemAvailable", info.get("MemFree", 0))


def machine_usage() -> tuple[float, int]:
    """(CPU millicores busy since the previous call, or over a 0.25 s window; memory in use)."""
    busy, total = _cpu_times()
    now = time.monotonic()
    with _MACHINE_LOCK:
        before = _MACHINE[0] if _MACHINE else None
    if before is None or now - before[0] < FIRST_WINDOW:
        time.sleep(FIRST_WINDOW)
        before = (now, busy, total)
        busy, total = _cpu_times()
        now = time.monotonic()
    cores = os.cpu_count() or 1
    share = (busy - before[1]) / (total - before[2]) if total > before[2] else 0.0
    with _MACHINE_LOCK:
        _MACHINE[:] = [(now, busy, total)]
    return max(0.0, share) * cores * 1000.0, _memory_used()
