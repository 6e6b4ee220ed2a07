"""Bench: memory of the console process across pipeline runs (issue 25 item 5). The wide pipeline
of bench_pipeline_dispatch (no-op steps on the local cluster, embedded Celery worker, SQLite) runs
`--runs` times in this process; after each run (and a gc) it prints the RSS and, with
--tracemalloc, the allocation sites that grew most since the previous run. Not pass/fail.

    .venv/bin/python bench/bench_memory.py [--tasks 1000] [--width 100] [--runs 3] [--tracemalloc]

Figures (SQLite, this loaded 2-core machine, 2026-12-06; RSS after each run and a gc):
  200-step runs (4 stages x 50), --tracemalloc, before the job-record fix: 121 -> 140, 146, 151 MiB;
    tracemalloc's top growth per run: the local executor's job records (~150 KiB) and their
    spawn records (~48 KiB), kept for the process's life (fixed: dropped 5 minutes after the
    job finished).
  200-step runs, no tracemalloc, after the fix: 121 -> 128, 129, 130 MiB; the same with
    MALLOC_ARENA_MAX=2: 121 -> 125, 125, 126 MiB.
  1000-step runs (10 x 100), after the fix (records of the last 5 minutes still held):
    120 -> 146, 150, 153 MiB (27% over idle; the goal is 20%); the same with MALLOC_ARENA_MAX=2:
    121 -> 142, 146, 147 MiB (21%). (The issue saw 121 -> 252 MiB over three such runs.)
Most of what is left is the allocator's (per-thread arenas), not references tracemalloc sees.

Issue 25 item 5, 2026-12-07, this branch against main run side by side (same time, load average
27 -> 59 from the other engineers), `bench_memory.py --runs 2`, 1,000-step runs:
  main:                  124 -> 147, 153 MiB (19%, 23% over idle)
  dice_console/heap.py:  126 -> 135, 138 MiB ( 7%, 10% over idle; goal: within 20%)
Found with --tracemalloc (three 1,000-step runs of main: 125 -> 175, 198, 210 MiB with the tracer):
what Python still references grows 1-4 MiB a run (the interned-string table pathlib fills with
every job path, query results held briefly, parsed pipelines); the rest of the growth is glibc's:
blocks freed by the worker's and the engine's threads stay mapped in per-thread arenas. The
console now caps arenas at 2 (mallopt M_ARENA_MAX, before any thread starts) and trims (gc, then
malloc_trim) 2 s after the last run ends (apps.pipelines.states.move_run).

Issue 24 item 5, 2026-12-07, the web collector policy (dice_console/heap.py tune_collector, which
`manage.py standalone` gets from dice_console.asgi), `--runs 2`, one after the other (load 3 -> 80
from the other engineers' scale tier): main 136 -> 143, 149 MiB; with the policy 136 -> 144, 149 MiB
(6%, 10% over idle: within 20%).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DICE_ORG_CREATION", "anyone")  # the bench user makes its own organizations


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="dice-bench-mem-")
    os.environ["DICE_DATA_DIR"] = tmp
    os.environ["DICE_LOCAL_ROOT"] = str(Path(tmp) / "local")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dice_console.settings")
    import django

    from dice_console import heap

    heap.limit_arenas()  # as `manage.py standalone` does, before any thread starts
    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from bench.bench_pipeline_dispatch import wide_source

    call_command("migrate", verbosity=0)
    settings.DICE_PIPELINE_MAX_PARALLEL_STEPS = 1000
    settings.DICE_LOCAL_ROOT = str(Path(tmp) / "local")
    from apps.pipelines import services
    from apps.pipelines.models import PipelineRun
    from apps.projects import services as project_services
    from dice_console.celery import app as celery_app
    from dice_console.embedded import EmbeddedWorker
    from dice_console.heap import settle_heap, tune_collector

    owner = get_user_model().objects.create_user("bench")
    org = project_services.create_organization(owner, slug="bench")
    project = project_services.create_project(owner, org, slug="bench")
    app = project_services.create_application(owner, project, slug="noop")
    worker = EmbeddedWorker(celery_app, with_beat=False, concurrency=8)
    worker.start()
    settle_heap()
    tune_collector()  # standalone serves dice_console.asgi, which sets the web process's thresholds
    if args.tracemalloc:
        tracemalloc.start(12)
    source = wide_source(args.tasks, args.width)
    print(f"idle: RSS {rss_mib():.0f} MiB", flush=True)
    previous = tracemalloc.take_snapshot() if args.tracemalloc else None
    try:
        for i in range(1, args.runs + 1):
            run = services.start_run(owner, app, source=source)
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline:
                status = PipelineRun.objects.filter(pk=run.pk).values_list("status", flat=True).first()
                if status in ("success", "failed", "cancelled"):
                    break
                time.sleep(0.5)
            time.sleep(2 + heap.TRIM_DELAY + 1)  # the run's last pushes and collectors, the heap's trim
            gc.collect()
            print(f"after run {i} ({status}): RSS {rss_mib():.0f} MiB", flush=True)
            if previous is not None:
                snapshot = tracemalloc.take_snapshot()
                for stat in snapshot.compare_to(previous, "traceback")[:8]:
                    print(f"  +{stat.size_diff / 1024:.0f} KiB ({stat.count_diff:+d} blocks)")
                    for line in stat.traceback.format()[-8:]:
                        print(f"      {line}")
                previous = snapshot
    finally:
        from bench.embedded import stop_console

        stop_console(worker)
    return 0


if __name__ == "__main__":
    sys.exit(main())
