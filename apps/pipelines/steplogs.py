"""A step's log: the job's numbered lines persisted as they arrive (a compare-and-set cursor, so
several readers at once never store a line twice), and the console's own lines."""

from __future__ import annotations

import json
import time

from django.db import transaction
from django.db.models import F

from apps.logs import services as log_services
from apps.pipelines import secrets
from apps.pipelines.choices import LogStream
from apps.pipelines.models import PipelineRun, TaskRun
from apps.pipelines.paths import job_namespace
from apps.pipelines.reference import project_configs
from scheduler.base import Executor


def _parse(raw_text: str, fallback_ts: float, fallback_stream: str) -> tuple[float, str, str]:
    if raw_text.startswith('{"n"'):
        try:
            data = json.loads(raw_text)
            return float(data["ts"]), str(data.get("stream") or "stdout"), str(data.get("text", ""))
        except (ValueError, KeyError, TypeError):
            pass
    return fallback_ts, fallback_stream, raw_text


def pump_logs(executor: Executor, run: PipelineRun, task: TaskRun, masker: secrets.Masker | None = None) -> int:
    """Persist the job's lines not persisted yet; returns how many. Safe to call from several
    places at once: the cursor moves by compare-and-set, a loser's insert is rolled back and retried."""
    if not task.job_name:
        return 0
    if masker is None:
        _, masker = project_configs(run.application.project_id)
    for _ in range(5):
        count = _pump_once(executor, run, task, masker)
        if count is not None:
            return count
    return 0


def pump_many(executor: Executor, run: PipelineRun, tasks: list[TaskRun], masker: secrets.Masker) -> None:
    """pump_logs for several steps of the run in one transaction (the steps of a wide stage end
    together: one commit for them all, not one each). When another writer moved one of their
    cursors meanwhile, nothing of it is kept and each is pumped on its own."""
    pending = [(task, fresh) for task in tasks if task.job_name
               for fresh in [_fresh_lines(executor, run, task, masker)] if fresh is not None]
    if not pending:
        return
    try:
        with transaction.atomic():
            for task, (rows, cursor) in pending:
                _move_cursor(task, cursor, len(rows))
            log_services.append_many_task_lines([(task.pk, task.last_line + 1, rows) for task, (rows, _) in pending])
    except _LostRace:
        for task, _ in pending:
            task.refresh_from_db(fields=["log_cursor", "last_line"])
            pump_logs(executor, run, task, masker)
        return
    for task, (rows, cursor) in pending:
        task.log_cursor, task.last_line = cursor, task.last_line + len(rows)


def _fresh_lines(executor: Executor, run: PipelineRun, task: TaskRun, masker: secrets.Masker):
    """The job's lines after the task's cursor as log entries, and the cursor after them; None
    when there are none."""
    fresh = [line for line in executor.job_logs(task.job_name, job_namespace(run)) if line.number > task.log_cursor]
    if not fresh:
        return None
    rows = []
    for line in fresh:
        stamp, stream, text = _parse(line.text, line.timestamp, line.stream)
        stream = stream if stream in LogStream.values else LogStream.STDOUT
        rows.append((stamp, stream, task.attempt, masker.line(text, f"{task.pk}/{stream}")))
    return rows, fresh[-1].number


def _move_cursor(task: TaskRun, cursor: int, count: int) -> None:
    """Compare-and-set the task's log cursor and last line number (inside the caller's transaction,
    which stores the lines); _LostRace when another writer moved them first."""
    moved = TaskRun.objects.filter(pk=task.pk, log_cursor=task.log_cursor, last_line=task.last_line).update(
        log_cursor=cursor, last_line=task.last_line + count)
    if not moved:
        raise _LostRace


def _pump_once(executor: Executor, run: PipelineRun, task: TaskRun, masker: secrets.Masker) -> int | None:
    fresh = _fresh_lines(executor, run, task, masker)
    if fresh is None:
        return 0
    rows, cursor = fresh
    try:
        with transaction.atomic():
            _move_cursor(task, cursor, len(rows))
            log_services.append_task_lines(task.pk, task.last_line + 1, rows)
    except _LostRace:
        task.refresh_from_db(fields=["log_cursor", "last_line"])
        return None
    task.log_cursor, task.last_line = cursor, task.last_line + len(rows)
    return len(rows)


class _LostRace(Exception):
    pass


def append_lines(task: TaskRun, texts: list[str], stream: str = LogStream.SYSTEM) -> None:
    """Lines written by the console itself (built-in actions, attempts, results)."""
    if not texts:
        return
    with transaction.atomic():
        locked = TaskRun.objects.select_for_update().filter(pk=task.pk)
        current = locked.values_list("last_line", flat=True).first() or 0
        now = time.time()
        log_services.append_task_lines(task.pk, current + 1, [(now, stream, task.attempt, text) for text in texts])
        TaskRun.objects.filter(pk=task.pk).update(last_line=F("last_line") + len(texts))
    task.last_line = current + len(texts)
