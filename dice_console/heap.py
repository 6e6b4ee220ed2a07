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
import logging
import os
import threading

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
