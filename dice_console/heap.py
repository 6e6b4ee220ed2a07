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
# CPython 3.11 collects its youngest generation every 700 net allocations, and moves what survives
# two of them to the oldest generation. A list request builds tens of thousands of objects that
# live until its response is written (rows, serializers, template contexts), so each request moved
# thousands of them there: the ones in reference cycles (DRF's fields and their parents, request
# and view) stayed until a full collection, which then walked them all, holding the interpreter
# lock, 30-100 ms every ~50 requests. A larger young generation lets a request's objects die young
# (a young pass costs what is alive, not what died); what a process builds lazily in its first
# requests (compiled templates, URL and serializer caches) is frozen once warm, as startup's was.
YOUNG_THRESHOLD = 20_000
THRESHOLDS_ENV = "DICE_GC_THRESHOLDS"  # "young,middle,old" (the interpreter's default is 700,10,10)
WARMUP_REQUESTS = 200
WARMUP_ENV = "DICE_GC_WARMUP_REQUESTS"  # 0: freeze at startup only


def collector_thresholds() -> tuple[int, int, int]:
    """The thresholds a web process runs with: DICE_GC_THRESHOLDS, else a young generation of
    YOUNG_THRESHOLD and the interpreter's others."""
    raw = os.environ.get(THRESHOLDS_ENV, "").strip()
    if raw:
        try:
            values = tuple(int(part) for part in raw.split(","))
        except ValueError:
            values = ()
        if len(values) != 3 or min(values) < 1:
            raise ValueError(f"{THRESHOLDS_ENV}={raw!r}: three positive integers, young,middle,old (e.g. 20000,10,10)")
        return values
    _, middle, old = gc.get_threshold()
    return YOUNG_THRESHOLD, middle, old


def tune_collector() -> tuple[int, int, int]:
    """Install the web process's collector thresholds (collector_thresholds); returns them."""
    thresholds = collector_thresholds()
    gc.set_threshold(*thresholds)
    return thresholds


class SettleWhenWarm:
    """ASGI middleware: once `requests` HTTP requests have finished, at the first moment no request
    is in flight, the process collects and freezes again (settle_heap), once: what the first
    requests built to keep is then skipped by every later full collection. Frozen objects are never
    collected, so this runs once per process and never while a request's objects are alive."""

    def __init__(self, app, requests: int | None = None):
        self.app = app
        if requests is None:
            requests = int(os.environ.get(WARMUP_ENV, WARMUP_REQUESTS))
        self.remaining = requests
        self.settled = requests <= 0
        self.in_flight = 0

    async def __call__(self, scope, receive, send):
        if self.settled or scope["type"] != "http":
            return await self.app(scope, receive, send)
        self.in_flight += 1
        try:
            return await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            self.remaining -= 1
            if self.remaining <= 0 and self.in_flight == 0 and not self.settled:
                self.settled = True
                settle_heap()


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
