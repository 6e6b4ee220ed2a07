"""A step's log: the job's numbered lines persisted as they arrive (a compare-and-set cursor, so
several readers at once never store a line twice), and the console's own lines."""

from __future__ import annotations

import json
import threading
import time

from django.db import connection, transaction

from apps.logs import services as log_services
from apps.pipelines import secrets
from apps.pipelines.choices import LogStream
from apps.pipelines.models import PipelineRun, TaskRun
from apps.pipelines.paths import job_namespace
from apps.pipelines.reference import project_configs
from apps.pipelines.states import run_group
from dice_console.statemachine import push_after_commit
from scheduler.base import Executor

# The run page shows each task's line count (and its log link once there are lines). Its socket
# hears task moves; stored lines are announced too, as a row to fetch again: at once for a task's
# first lines, then at most every ROWS_EVERY seconds per task (a chatty step must not make every
# open run page fetch its row at each of the monitor's passes).
ROWS_EVERY = 2.0
_announced: dict[int, float] = {}  # task id -> when its row was last announced (monotonic)
_announced_lock = threading.Lock()


def _announce_rows(stored: list[tuple[TaskRun, int]]) -> None:
    """After the surrounding transaction commits, tell each run's page which of these tasks
    (task, its last line before) have new lines worth a fetch of their rows."""
    now = time.monotonic()
    by_run: dict[int, list] = {}
    with _announced_lock:
        if len(_announced) > 10000:
            for key in [k for k, at in _announced.items() if now - at > 60]:
                del _announced[key]
        for task, before in stored:
            if before == 0 or now - _announced.get(task.pk, 0.0) >= ROWS_EVERY:
                _announced[task.pk] = now
                by_run.setdefault(task.run_id, []).append([task.alias, task.status])
    for run_id, tasks in by_run.items():
        push_after_commit(run_group(run_id), {"type": "run.tasks", "tasks": tasks})


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
    together: one commit for them all, not one each)."""
    pump_all([(executor, run, task, masker) for task in tasks])


def pump_all(items: list[tuple[Executor, PipelineRun, TaskRun, secrets.Masker]]) -> None:
    """pump_logs for steps of any runs, their new lines stored in one transaction: the monitor's
    pass over 50 talking steps is one commit and one push hop, not 50 (each append has a fixed
    cost of a few queries and a commit). When another writer moved one of their cursors
    meanwhile, nothing of it is kept and each is pumped on its own."""
    pending = [(executor, run, task, masker, fresh) for executor, run, task, masker in items if task.job_name
               for fresh in [_fresh_lines(executor, run, task, masker)] if fresh is not None]
    if not pending:
        return
    try:
        with transaction.atomic():
            for *_, task, _, (rows, cursor) in pending:
                _move_cursor(task, cursor, len(rows))
            log_services.append_many_task_lines([(task.pk, task.last_line + 1, rows)
                                                 for *_, task, _, (rows, _) in pending])
            _announce_rows([(task, task.last_line) for *_, task, _, _ in pending])
    except _LostRace:
        for executor, run, task, masker, _ in pending:
            task.refresh_from_db(fields=["log_cursor", "last_line"])
            pump_logs(executor, run, task, masker)
        return
    for *_, task, _, (rows, cursor) in pending:
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
    meta, quote = TaskRun._meta, connection.ops.quote_name
    cursor_column, last_column = (quote(meta.get_field(name).column) for name in ("log_cursor", "last_line"))
    with connection.cursor() as db:  # as SQL: compiling the queryset cost more than running it
        db.execute(f"UPDATE {quote(meta.db_table)} SET {cursor_column} = %s, {last_column} = %s "
                   f"WHERE {quote(meta.pk.column)} = %s AND {cursor_column} = %s AND {last_column} = %s",
                   [cursor, task.last_line + count, task.pk, task.log_cursor, task.last_line])
        if db.rowcount != 1:
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
            _announce_rows([(task, task.last_line)])
    except _LostRace:
        task.refresh_from_db(fields=["log_cursor", "last_line"])
        return None
    task.log_cursor, task.last_line = cursor, task.last_line + len(rows)
    return len(rows)


def _set_last_lines(values: dict[int, int]) -> None:
    """TaskRun.last_line = value for each id, by one statement (the rows are locked by the caller).
    Written as SQL: the ORM's Case/When for 50 rows cost more to compile than the insert of their lines."""
    if not values:
        return
    table = connection.ops.quote_name(TaskRun._meta.db_table)
    column = connection.ops.quote_name(TaskRun._meta.get_field("last_line").column)
    key = connection.ops.quote_name(TaskRun._meta.pk.column)
    ids = sorted(values)
    cases = " ".join(["WHEN %s THEN CAST(%s AS INTEGER)"] * len(ids))  # typed for PostgreSQL
    params = [x for pk in ids for x in (pk, values[pk])] + ids
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {column} = CASE {key} {cases} END "
                       f"WHERE {key} IN ({', '.join(['%s'] * len(ids))})", params)


class _LostRace(Exception):
    pass


def append_lines(task: TaskRun, texts: list[str], stream: str = LogStream.SYSTEM) -> None:
    """Lines written by the console itself (built-in actions, attempts, results)."""
    append_lines_many([(task, texts, stream)])


def append_lines_many(items: list[tuple[TaskRun, list[str], str]]) -> None:
    """append_lines for several task runs at once ((task, texts, stream) each; a task may come
    more than once): one transaction, their rows locked by one query in id order, the last chunks
    read by one query, the new chunks inserted by one statement and the line counters moved by one
    update. Each append has a fixed cost (a round of queries and a commit): a producer of many
    streams (the bench's 50) hands them over together and pays it once."""
    wanted: dict[int, list[tuple[TaskRun, list[str], str]]] = {}
    for task, texts, stream in items:
        if texts:
            wanted.setdefault(task.pk, []).append((task, texts, stream))
    if not wanted:
        return
    with transaction.atomic():
        current = dict(TaskRun.objects.select_for_update().filter(pk__in=sorted(wanted))
                       .order_by("pk").values_list("pk", "last_line"))
        now = time.time()
        batch, counts = [], {}
        for pk in sorted(wanted):
            if pk not in current:
                continue
            rows = [(now, stream, task.attempt, text) for task, texts, stream in wanted[pk] for text in texts]
            batch.append((pk, (current[pk] or 0) + 1, rows))
            counts[pk] = len(rows)
        log_services.append_many_task_lines(batch)
        _set_last_lines({pk: (current[pk] or 0) + count for pk, count in counts.items()})
    for pk, group in wanted.items():
        for task, _, _ in group:
            task.last_line = (current.get(pk) or 0) + counts.get(pk, 0)
