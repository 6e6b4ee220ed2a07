"""The long-running console process gives memory back once a burst of work is over.

Measured with bench/bench_memory.py (three 1,000-step runs in one process): what Python still
references after a run grows by ~1-2 MiB (tracemalloc, diffed across runs: parsed pipelines and
the local engine's job records, both dropped later), while RSS grew by 25-50 MiB a run and did not
come down. The rest is glibc's: the embedded worker's and the engine's threads each allocate from
an arena of their own (up to 8 per core), and memory freed inside an arena stays mapped until
malloc_trim. So: few arenas (M_ARENA_MAX, set before the threads start) and a trim once a run ends.
Both are glibc calls looked up at run time; elsewhere (musl, macOS) they do nothing."""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import os
import signal
import threading
import time

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's mallopt parameter
ARENAS = 2
TRIM_DELAY = 2.0  # seconds after the last finished run: a burst of runs ending is trimmed once

_libc = None
_timer: threading.Timer | None = None
_lock = threading.Lock()


def _c():
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None)
        except OSError:  # pragma: no cover - no C library to ask
            _libc = False
    return _libc


def limit_arenas(arenas: int | None = None) -> bool:
    """At most `arenas` malloc arenas (MALLOC_ARENA_MAX in the environment wins). Call it before
    the process starts its threads: arenas made earlier stay. True when glibc took it."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    libc = _c()
    mallopt = getattr(libc, "mallopt", None) if libc else None
    return bool(mallopt and mallopt(M_ARENA_MAX, arenas or ARENAS))


def trim() -> bool:
    """Collect, then hand the free pages of every arena back to the system. True when trimmed."""
    gc.collect()
    libc = _c()
    malloc_trim = getattr(libc, "malloc_trim", None) if libc else None
    return bool(malloc_trim and malloc_trim(0))


def trim_soon(delay: float = TRIM_DELAY) -> None:
    """trim() once, `delay` seconds after the last call (a daemon timer; never raises)."""
    global _timer

    def run() -> None:
        try:
            trim()
        except Exception:  # pragma: no cover - memory is a nicety, never a failure
            log.exception("trimming the heap failed")

    with _lock:
        if _timer is not None:
            _timer.cancel()
        _timer = threading.Timer(delay, run)
        _timer.daemon = True
        _timer.start()


def settle_heap() -> None:
    """Once a long-running process has started (Django, the worker, the app registry): collect,
    then freeze what is left so the collector's full passes skip it. Measured on the wide
    pipeline benchmark: full collections went from 232 ms (up to 85 ms each, holding the
    interpreter lock while a stage waited to start) to 9 ms. Not for processes that start workers
    again and again (tests): frozen objects are never collected by the cyclic collector. Called
    by `manage.py standalone`, each Celery worker process and each web process (dice_console/asgi.py):
    in a web process it took the p99 of the list endpoints with 10,000 rows from 160-280 ms
    (full collections of ~100-150 ms every ~50 requests) to ~60 ms (bench/bench_api_scale.py)."""
    gc.collect()
    gc.freeze()


# --- The collector's policy in the web processes ---------------------------------------------------
# CPython 3.11 collects its youngest generation every 700 net allocations, wherever the program is.
# A list request holds tens of thousands of objects until its response is written (rows,
# serializers, template contexts), so passes in the middle of it walked them, and moved them to
# older generations; those in reference cycles (DRF's fields and their parents, request and view)
# then stayed until a full collection, which walked them all, holding the interpreter lock,
# 30-120 ms every ~50-75 requests (bench/bench_api_scale.py --serve, DICE_GC_STATS).
# A bigger young generation alone made it worse: each pass in the middle of a request walked more
# of that request's live objects (20,000: passes of ~20 ms, 10 s of 8,686 requests). Collecting the
# young and middle generations together each time the process was idle made it worse too (700,100,
# 100: 6.5 s of middle passes, each walking what several requests had left in cycles).
# So a web process collects where no request is alive: when the last request in flight has
# finished, the young generation (what survived or is cyclic garbage: small), every tenth time the
# middle one, every hundredth a full pass; the allocation thresholds stay as the backstop, the
# young one raised (10,000) so that most requests finish before it (a burst of requests that never
# leaves the process idle is still collected by them). What the first requests built to keep
# (compiled templates, URL and serializer caches) is frozen once, as startup's was.
BACKSTOP_THRESHOLDS = (10_000, 10, 10)
THRESHOLDS_ENV = "DICE_GC_THRESHOLDS"  # "young,middle,old" (the interpreter's default is 700,10,10)
WARMUP_REQUESTS = 200
WARMUP_ENV = "DICE_GC_WARMUP_REQUESTS"  # 0: freeze at startup only
IDLE_ENV = "DICE_GC_WHEN_IDLE"  # 0: leave collection to the thresholds alone
MIDDLE_EVERY = 10  # idle young passes between middle ones, and middle ones between full ones


def collector_thresholds() -> tuple[int, int, int]:
    """The allocation thresholds a web process runs with: DICE_GC_THRESHOLDS, else BACKSTOP_THRESHOLDS."""
    raw = os.environ.get(THRESHOLDS_ENV, "").strip()
    if not raw:
        return BACKSTOP_THRESHOLDS
    try:
        values = tuple(int(part) for part in raw.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise ValueError(f"{THRESHOLDS_ENV}={raw!r}: three positive integers, young,middle,old (e.g. 10000,10,10)")
    return values


def warmup_requests() -> int:
    """Requests whose objects are frozen once they have been served: DICE_GC_WARMUP_REQUESTS, else
    WARMUP_REQUESTS (0: only startup's)."""
    raw = os.environ.get(WARMUP_ENV, "").strip()
    if not raw:
        return WARMUP_REQUESTS
    if not raw.isdigit():
        raise ValueError(f"{WARMUP_ENV}={raw!r}: a number of requests, 0 or more (e.g. {WARMUP_REQUESTS})")
    return int(raw)


def tune_collector() -> tuple[int, int, int]:
    """Install the web process's allocation thresholds (collector_thresholds); returns them."""
    thresholds = collector_thresholds()
    gc.set_threshold(*thresholds)
    return thresholds


class Idle:
    """Collections made while no request is alive (`collect`, called when the last request in
    flight has finished): young each time, middle every MIDDLE_EVERY, full every MIDDLE_EVERY
    middle ones; and, once `warmup` requests have finished, settle_heap instead."""

    def __init__(self, warmup: int):
        self.remaining = warmup
        self.settled = warmup <= 0
        self.young = 0
        self.middle = 0

    def collect(self, passes: bool = True) -> None:
        """A moment with no request alive: count the warm-up, then (with `passes`) collect."""
        if not self.settled:
            self.remaining -= 1
            if self.remaining <= 0:
                self.settled = True
                settle_heap()
                return
        if not passes or gc.get_count()[0] == 0:
            return
        self.young += 1
        if self.young < MIDDLE_EVERY:
            gc.collect(0)
            return
        self.young = 0
        self.middle += 1
        if self.middle < MIDDLE_EVERY:
            gc.collect(1)
            return
        self.middle = 0
        gc.collect(2)


class CollectWhenIdle:
    """ASGI middleware of the web process (dice_console/asgi.py): counts the HTTP requests in flight
    and, each time the last one finishes, runs Idle.collect (after its response was sent).
    DICE_GC_WHEN_IDLE=0 leaves only the warm-up freeze."""

    def __init__(self, app, warmup: int | None = None, when_idle: bool | None = None):
        self.app = app
        if warmup is None:
            warmup = warmup_requests()
        if when_idle is None:
            when_idle = os.environ.get(IDLE_ENV, "1") != "0"
        self.idle = Idle(warmup)
        self.when_idle = when_idle
        self.in_flight = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or (self.idle.settled and not self.when_idle):
            return await self.app(scope, receive, send)
        self.in_flight += 1
        try:
            return await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.idle.collect(passes=self.when_idle)


# --- Collector pauses, for benchmarks (bench/bench_api_scale.py --serve) --------------------------
# DICE_GC_STATS=<file> in a process's environment: every collection's pause is counted per
# generation, and SIGUSR1 writes the totals to <file> (JSON, replaced atomically). Only the
# operator who starts the process can ask (a signal, a file of its choosing); nothing is served.
GC_STATS_ENV = "DICE_GC_STATS"
_gc_stats: dict | None = None


def _gc_callback(phase: str, info: dict) -> None:
    stats = _gc_stats
    if stats is None:
        return
    if phase == "start":
        stats["_t0"] = time.perf_counter()
        return
    ms = 1000 * (time.perf_counter() - stats.pop("_t0", time.perf_counter()))
    gen = stats["generations"][info["generation"]]
    gen["count"] += 1
    gen["total_ms"] += ms
    gen["max_ms"] = max(gen["max_ms"], ms)
    gen["window_max_ms"] = max(gen["window_max_ms"], ms)  # since the last dump
    gen["collected"] += info["collected"]


def gc_stats() -> dict | None:
    """The pauses counted so far (None unless watch_collections ran)."""
    if _gc_stats is None:
        return None
    return {"seq": _gc_stats["seq"], "generations": [dict(g) for g in _gc_stats["generations"]],
            "threshold": list(gc.get_threshold()), "count": list(gc.get_count()),
            "frozen": gc.get_freeze_count(), "tracked": {i: len(gc.get_objects(i)) for i in range(3)}}


def watch_collections(path: str | None = None) -> bool:
    """Count collector pauses (see GC_STATS_ENV); `path` defaults to the environment's. SIGUSR1
    writes them to `path` where the caller runs in the main thread. True when watching."""
    global _gc_stats
    path = path or os.environ.get(GC_STATS_ENV)
    if not path:
        return False
    if _gc_stats is None:
        _gc_stats = {"seq": 0, "generations": [
            {"count": 0, "total_ms": 0.0, "max_ms": 0.0, "window_max_ms": 0.0, "collected": 0} for _ in range(3)]}
        gc.callbacks.append(_gc_callback)

    def dump(*_):
        _gc_stats["seq"] += 1
        tmp = f"{path}.tmp"
        stats = gc_stats()
        for gen in _gc_stats["generations"]:
            gen["window_max_ms"] = 0.0
        with open(tmp, "w") as f:
            json.dump(stats, f)
        os.replace(tmp, path)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGUSR1, dump)
    return True
