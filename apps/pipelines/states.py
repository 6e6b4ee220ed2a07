"""The two state machines of pipelines (runs, task runs), on the shared mechanism of
dice_console.statemachine: moves are checked against the tables, locked and compared with what
the caller read (a row that moved meanwhile is left alone), written with their history rows, and
announced the same way as deployments'."""

from __future__ import annotations

from django.db import connection, transaction
from django.utils import timezone

from apps.pipelines.choices import FINISHED_TASK, RUN_TRANSITIONS, TASK_TRANSITIONS
from apps.pipelines.models import PipelineRun, PipelineRunTransition, TaskRun, TaskRunTransition
from dice_console import heap
from dice_console.statemachine import IllegalTransition, Machine, Move, check

__all__ = ["IllegalTransition", "check", "finish_tasks", "move_run", "move_task", "move_tasks", "run_group",
           "update_each"]



def run_group(run_id: int) -> str:
    """The Channels group that hears a run's moves and its tasks' (the run page's WebSocket)."""
    return f"pipeline-run-{run_id}"


def _pushed_runs(moves: list) -> list[tuple[str, dict]]:
    return [(run_group(run.pk), {"type": "run.changed", "status": to}) for run, _before, to, _reason in moves]


def _pushed_tasks(moves: list) -> list[tuple[str, dict]]:
    """One push per run for all the tasks a transaction moved: which tasks, and where to. The
    page fetches those rows again (apps/pipelines/views.RunView, ?rows=)."""
    by_run: dict[int, list] = {}
    for task, _before, to, _reason in moves:
        by_run.setdefault(task.run_id, []).append([task.alias, to])
    return [(run_group(run_id), {"type": "run.tasks", "tasks": tasks}) for run_id, tasks in by_run.items()]


RUNS = Machine(PipelineRun, PipelineRunTransition, "run", RUN_TRANSITIONS, lambda run: f"run {run.pk}",
               push_many=_pushed_runs)
# A task's row must still be at the attempt the caller read, as well as the status.
TASKS = Machine(TaskRun, TaskRunTransition, "task_run", TASK_TRANSITIONS, lambda task: f"task {task.alias}",
                expect=("status", "attempt"), push_many=_pushed_tasks)


def move_task(task: TaskRun, to: str, reason: str = "", **fields) -> bool:
    """Move `task` from the status it has in memory to `to`. False (and nothing written) when the
    row has moved meanwhile: someone else won the race. IllegalTransition when not allowed."""
    if to in FINISHED_TASK and "finished" not in fields:
        fields["finished"] = timezone.now()
    if reason and "reason" not in fields and to != "running":
        fields["reason"] = reason
    history = {"attempt": fields.get("attempt", task.attempt)}
    return bool(TASKS.move_many([Move(task, to, reason, fields, history)]))


def move_run(run: PipelineRun, to: str, reason: str = "", **fields) -> bool:
    """Move `run` to `to` from the status it has in memory; see move_task."""
    now = timezone.now()
    if to == "running" and "started" not in fields:
        fields["started"] = now
    if to in ("success", "failed", "cancelled", "timed-out") and "finished" not in fields:
        fields["finished"] = now
    if reason and to != "running":
        fields.setdefault("reason", reason)
    moved = RUNS.move(run, to, reason, fields)
    if moved and to in ("success", "failed", "cancelled", "timed-out"):
        # A run's end frees its working set: give the pages back once the commit is done
        # (dice_console/heap.py; without it the console's RSS only grew, run after run).
        transaction.on_commit(heap.trim_soon)
    return moved


def move_tasks(tasks: list[TaskRun], to: str, reason) -> list[TaskRun]:
    """move_task for many tasks in one transaction (the claim of a wide stage): each row is still
    compared with its own status and attempt; returns the tasks that moved. `reason` is a
    string or a function of the task."""
    if to != "running":
        raise ValueError("move_tasks only claims (to running); other moves set fields: use move_task")
    return TASKS.move_many([
        Move(task, to, reason(task) if callable(reason) else reason, {}, {"attempt": task.attempt})
        for task in tasks
    ])


def finish_tasks(moves: list[tuple[TaskRun, str, str, dict]]) -> list[TaskRun]:
    """move_task for many tasks moving to a finished status in one transaction (the steps of a
    wide stage collected together): (task, to, reason, fields) each; a field one move sets and
    another does not keeps that task's value. Compared with each task's status and attempt, as
    move_task. Returns the tasks that moved; their transitions are announced as move_task's are."""
    if not moves:
        return []
    names = sorted({name for _, _, _, fields in moves for name in fields} | {"finished", "reason"})
    now = timezone.now()
    for task, to, _, _ in moves:
        check(TASK_TRANSITIONS, f"task {task.alias}", task.status, to)
        if to not in FINISHED_TASK:
            raise ValueError(f"finish_tasks moves to finished statuses only, not {to}")

    def write(moved: list[Move]) -> None:  # per-task values: one executemany
        update_each({m.obj: {"status": m.to, **{name: m.fields.get(name, getattr(m.obj, name)) for name in names}}
                     for m in moved})

    return TASKS.move_many([
        Move(task, to, reason, {"finished": now, "reason": reason, **fields}, {"attempt": task.attempt})
        for task, to, reason, fields in moves
    ], write=write)


def update_each(changes: dict, *, unset: str = "") -> None:
    """Give each task its own values ({task: {field: value}}, the same fields for every task) in
    one executemany, for the rows still at the task's attempt (and with `unset` still null): a
    wide stage's 100 rows cost one statement's preparation, not 100 querysets."""
    if not changes:
        return
    meta, quote = TaskRun._meta, connection.ops.quote_name
    fields = [meta.get_field(name) for name in next(iter(changes.values()))]
    sql = (f"UPDATE {quote(meta.db_table)} SET " + ", ".join(f"{quote(f.column)} = %s" for f in fields)
           + f" WHERE {quote(meta.pk.column)} = %s AND {quote(meta.get_field('attempt').column)} = %s"
           + (f" AND {quote(meta.get_field(unset).column)} IS NULL" if unset else ""))
    rows = [[f.get_db_prep_save(values[f.name], connection) for f in fields] + [task.pk, task.attempt]
            for task, values in changes.items()]
    if len(rows) == 1:  # one statement is atomic by itself: no transaction to open (a chain's steps)
        with connection.cursor() as cursor:
            cursor.execute(sql, rows[0])
        return
    # One transaction (a caller's, without a savepoint): in autocommit each row would commit.
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.executemany(sql, rows)
