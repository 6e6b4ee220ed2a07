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
from scheduler.base import Executor, job_log_from

# The run page shows each task's line count (and its log link once there are lines). Its socket
# hears task moves; stored lines are announced too, as a row to fetch again: at once for a task's
# first lines, then at most every ROWS_EVERY seconds per task (a chatty step must not make every
# open run page fetch its row at each of the monitor's passes).
ROWS_EVERY = 2.0
STREAMS = frozenset(LogStream.values)  # Django's `values` builds its list at each call: 26 us a line
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


# Where each running step's job log was read up to (scheduler.base.job_log_from), for every reader
# of this process: the monitor's pumps while the step runs and its collection at the end (which
# read the whole log again: 50 steps ending together were 200,000 lines parsed to store their last
# few). Kept in this process only: another process reads a log from its start once, filtered by
# the task's stored cursor. forget_positions() drops those of steps no longer running.
_positions: dict[int, tuple[object, int]] = {}  # task id -> (position, the log cursor it was read up to)


def _position_of(task: TaskRun) -> object | None:
    """Where to read the task's log on from: None when this copy of the task is older than the
    position (its cursor behind what was stored), so the read starts over, filtered by the copy's
    cursor, and the compare-and-set finds the copy stale."""
    entry = _positions.get(task.pk)
    return entry[0] if entry is not None and entry[1] <= task.log_cursor else None


def _remember(task_id: int, position: object | None, cursor: int) -> None:
    """Keep the position once the lines read up to it are committed (a position moved by a
    transaction that rolls back afterwards would skip its lines at the next read)."""
    if position is not None:
        transaction.on_commit(lambda: _positions.__setitem__(task_id, (position, cursor)))


def forget_positions(keep: set[int]) -> None:
    """Drop the remembered log positions of tasks not in keep."""
    for task_id in [task_id for task_id in list(_positions) if task_id not in keep]:
        _positions.pop(task_id, None)


def pump_all(items: list[tuple[Executor, PipelineRun, TaskRun, secrets.Masker]], *, again: bool = True) -> None:
    """pump_logs for steps of any runs, their new lines stored in one transaction: the monitor's
    pass over 50 talking steps is one commit and one push hop, not 50 (each append has a fixed
    cost of a few queries and a commit). When another writer moved one of their cursors
    meanwhile, nothing of it is kept: their counters are read again and they are pumped together
    once more, then each on its own.

    Each log is read on from where this process last read it (_positions), not whole; the
    position moves once the lines read are committed, or when nothing after the cursor was new."""
    pending, moved = [], {}
    for executor, run, task, masker in items:
        if not task.job_name:
            continue
        rows, cursor, position = _fresh_lines(executor, run, task, masker, _position_of(task))
        if rows:
            pending.append((executor, run, task, masker, (rows, cursor)))
            moved[task.pk] = position
        else:
            _remember(task.pk, position, task.log_cursor)
    if not pending:
        return
    try:
        with transaction.atomic():
            _move_cursors([(task, cursor, len(rows)) for *_, task, _, (rows, cursor) in pending])
            log_services.append_many_task_lines([(task.pk, task.last_line + 1, rows)
                                                 for *_, task, _, (rows, _) in pending])
            _announce_rows([(task, task.last_line) for *_, task, _, _ in pending])
            for *_, task, _, (_, cursor) in pending:
                _remember(task.pk, moved[task.pk], cursor)
    except _LostRace:
        # Another writer moved some of these tasks' counters (the console's own lines as steps
        # start, a collection): read them all again by one query and try once more together,
        # then each on its own (50 transactions where steps were starting held their lines back).
        current = {pk: (cursor, last) for pk, cursor, last in TaskRun.objects.filter(
            pk__in=[task.pk for *_, task, _, _ in pending]).values_list("pk", "log_cursor", "last_line")}
        for *_, task, _, _ in pending:
            task.log_cursor, task.last_line = current.get(task.pk, (task.log_cursor, task.last_line))
        if again:
            pump_all([item[:4] for item in pending], again=False)
            return
        for executor, run, task, masker, _ in pending:
            pump_logs(executor, run, task, masker)
        return
    for *_, task, _, (rows, cursor) in pending:
        task.log_cursor, task.last_line = cursor, task.last_line + len(rows)


def _fresh_lines(executor: Executor, run: PipelineRun, task: TaskRun, masker: secrets.Masker,
                 position: object | None = None) -> tuple[list, int, object | None]:
    """The job's lines after the task's cursor as log entries (read on from `position` where the
    driver can), the cursor after them, and the position after them."""
    fresh, position = job_log_from(executor, task.job_name, job_namespace(run), position, task.log_cursor)
    rows = []
    for line in fresh:
        stamp, stream, text = _parse(line.text, line.timestamp, line.stream)
        stream = stream if stream in STREAMS else LogStream.STDOUT
        rows.append((stamp, stream, task.attempt, masker.line(text, f"{task.pk}/{stream}")))
    return rows, (fresh[-1].number if fresh else task.log_cursor), position


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


def _move_cursors(moves: list[tuple[TaskRun, int, int]]) -> None:
    """_move_cursor for several tasks (task, cursor, count) by one statement (the monitor's pass
    over 50 talking steps made 50 UPDATEs); _LostRace unless every row still had the values read."""
    if len(moves) == 1 or len({task.pk for task, _, _ in moves}) != len(moves):
        for move in moves:
            _move_cursor(*move)
        return
    table = connection.ops.quote_name(TaskRun._meta.db_table)
    key = connection.ops.quote_name(TaskRun._meta.pk.column)
    cursor_col = connection.ops.quote_name(TaskRun._meta.get_field("log_cursor").column)
    line_col = connection.ops.quote_name(TaskRun._meta.get_field("last_line").column)
    moves = sorted(moves, key=lambda m: m[0].pk)
    cases = " ".join(["WHEN %s THEN CAST(%s AS INTEGER)"] * len(moves))  # typed for PostgreSQL
    matches = " OR ".join([f"({key} = %s AND {cursor_col} = %s AND {line_col} = %s)"] * len(moves))
    params = [x for task, cursor, _ in moves for x in (task.pk, cursor)]
    params += [x for task, _, count in moves for x in (task.pk, task.last_line + count)]
    params += [x for task, _, _ in moves for x in (task.pk, task.log_cursor, task.last_line)]
    with connection.cursor() as db:
        db.execute(f"UPDATE {table} SET {cursor_col} = CASE {key} {cases} END, "
                   f"{line_col} = CASE {key} {cases} END WHERE {matches}", params)
        moved = db.rowcount
    if moved != len(moves):
        raise _LostRace


def _pump_once(executor: Executor, run: PipelineRun, task: TaskRun, masker: secrets.Masker) -> int | None:
    rows, cursor, position = _fresh_lines(executor, run, task, masker, _position_of(task))
    if not rows:
        _remember(task.pk, position, task.log_cursor)
        return 0
    try:
        with transaction.atomic():
            _move_cursor(task, cursor, len(rows))
            log_services.append_task_lines(task.pk, task.last_line + 1, rows)
            _announce_rows([(task, task.last_line)])
            _remember(task.pk, position, cursor)
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
