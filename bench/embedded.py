"""What the benches that run pipelines in-process share: ending the console they started."""

from __future__ import annotations


def stop_console(worker) -> None:
    """Stop the embedded worker, the step monitor and every local executor of this process,
    destroying what they ran (the benches' steps and runtimes leave nothing behind)."""
    from apps.pipelines import monitor
    from scheduler.local import _EXECUTORS

    worker.stop()
    monitor.stop()
    for executor in list(_EXECUTORS.values()):
        executor.destroy_all()
        executor.close()
