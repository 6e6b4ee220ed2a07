"""Fixtures of the pipeline tests: an embedded Celery worker, local cluster and pipeline roots
on tmp paths, and helpers to start a run and wait for it."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest

from tests.local.conftest import _recorded_processes


def wait_until(predicate, timeout: float = 30.0, what: str = "condition", interval: float = 0.05):
    deadline = time.monotonic() + timeout
    last = None
    from django.db import OperationalError

    while time.monotonic() < deadline:
        try:
            last = predicate()
        except OperationalError as exc:  # in-memory SQLite: "database table is locked" while a worker writes
            last = exc
            continue
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def close_local_executors() -> None:
    from scheduler.local import _EXECUTORS, _GUARD

    with _GUARD:
        executors = list(_EXECUTORS.values())
        _EXECUTORS.clear()
    for executor in executors:
        executor.close()


def retry_locked(fn, *args, **kwargs):
    """Call fn, again while in-memory SQLite says "database table is locked" (a worker thread is
    writing; the test database has no busy timeout, unlike the file database of the console)."""
    from django.db import OperationalError

    deadline = time.monotonic() + 20
    while True:
        try:
            return fn(*args, **kwargs)
        except OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def describe(run) -> str:
    """Each task of the run: status, reason, job and the job's state on its cluster, transitions."""
    from apps.pipelines import steps

    lines = [f"run {run.pk}: {run.status} {run.reason!r}"]
    for task in run.tasks.order_by("position"):
        job = ""
        if task.job_name:
            try:
                job = steps.job_state(steps.run_executor(run), run, task).state.value
            except Exception as exc:
                job = f"? {exc}"
        moves = " > ".join(f"{t.to_status}({t.reason[:60]})" for t in task.transitions.all())
        lines.append(f"  {task.alias}: {task.status} job={task.job_name or '-'}:{job} started={task.started} "
                     f"result={steps.read_result(task) is not None} | {moves}")
    return "\n".join(lines)


class Engine:
    """The embedded worker plus the roots; start() and stop() simulate a worker (re)start."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.worker = None

    def start(self):
        from dice_console.celery import app
        from dice_console.embedded import EmbeddedWorker

        self.worker = EmbeddedWorker(app, with_beat=False, concurrency=4)
        self.worker.start()

    def stop(self, *, crash: bool = True):
        """Stop the worker, the step monitor and this process's LocalExecutor: what dies with
        a worker process. The steps' processes keep running (their shims are in own sessions)."""
        from apps.pipelines import monitor

        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        monitor.stop()
        close_local_executors()

    def run(self, tenant, source: str, *, workspace: str = "DEV", params=None, user=None):
        from apps.pipelines import services

        return retry_locked(services.start_run, user or tenant.owner, tenant.app, source=source,
                            workspace=workspace, params=params or {})

    def wait(self, run, timeout: float = 30.0, statuses=("success", "failed", "cancelled", "timed-out")):
        def done():
            run.refresh_from_db()
            return run.status in statuses and run

        try:
            return wait_until(done, timeout, f"run {run.pk} to finish")
        except AssertionError as exc:  # say where it stuck: each task's state and its job's
            raise AssertionError(f"{exc}\n{describe(run)}") from None

    def tasks(self, run) -> dict:
        return {t.alias: t for t in run.tasks.all()}


@pytest.fixture
def engine(tmp_path, settings, transactional_db):
    settings.DICE_PIPELINE_ROOT = str(tmp_path / "pipelines")
    settings.DICE_LOCAL_ROOT = str(tmp_path / "local")
    settings.DICE_PIPELINE_MAX_RUNS_PER_PROJECT = 5
    close_local_executors()
    from dice_console.celery import app

    # Drop messages a previous test left behind.
    with app.connection_for_write() as conn, contextlib.suppress(Exception):
        conn.default_channel.queue_purge("celery")
    eng = Engine(tmp_path)
    eng.start()
    try:
        yield eng
    finally:
        eng.stop()
        root = tmp_path / "local"
        if root.exists():
            from scheduler.local import LocalExecutor
            from scheduler.local.state import proc_start_time

            known = _recorded_processes(root)
            sweeper = LocalExecutor(root)
            try:
                sweeper.destroy_all()
            finally:
                sweeper.close()
            import os

            for pid, start in known:
                if proc_start_time(pid) == start:
                    with contextlib.suppress(OSError):
                        os.killpg(pid, 9)
