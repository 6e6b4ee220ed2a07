"""dice_console/heap.py: memory freed by many threads goes back to the system once trimmed, and a
run's end schedules that trim (the console's RSS had only grown, run after run)."""

from __future__ import annotations

import threading

import pytest

from dice_console import heap


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_memory_freed_by_threads_is_given_back_by_a_trim():
    heap.trim()
    idle = _rss_mib()
    kept = []

    def work():
        # Blocks from malloc (over pymalloc's 512 bytes), in the thread's own arena, a few kept.
        blocks = [bytes(1000) + bytes([i % 256]) for i in range(30_000)]
        kept.append(blocks[::1000])

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    grown = _rss_mib()
    assert grown > idle + 100, (idle, grown)  # ~240 MiB were allocated and freed but for a few
    assert heap.trim() is True
    trimmed = _rss_mib()
    assert trimmed < idle + 0.2 * (grown - idle), (idle, grown, trimmed)


@pytest.mark.django_db
def test_a_run_that_ends_schedules_one_trim(tenant_a, django_capture_on_commit_callbacks):
    from apps.pipelines import states
    from apps.pipelines.models import PipelineRun

    run = PipelineRun.objects.create(application=tenant_a.app, source="x", status="running")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        states.move_run(run, "success")
    assert callbacks.count(heap.trim_soon) == 1
