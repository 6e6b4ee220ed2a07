"""The two state machines: moves are compare-and-set updates, refused when not allowed, and recorded."""

from __future__ import annotations

from django.db import connection, transaction
from django.db.models.signals import post_save
from django.utils import timezone

from apps.pipelines.choices import FINISHED_TASK, RUN_TRANSITIONS, TASK_TRANSITIONS
from apps.pipelines.models import PipelineRun, PipelineRunTransition, TaskRun, TaskRunTransition


class IllegalTransition(Exception):
    """A status change the state machine does not allow."""


def check(table: dict, what: str, current: str, to: str) -> None:
    if to not in table.get(current, frozenset()):
        allowed = ", ".join(sorted(table.get(current, ()))) or "nothing (it is finished)"
        raise IllegalTransition(f"{what} cannot go from {current} to {to}; from {current} it may go to {allowed}")


def move_task(task: TaskRun, to: str, reason: str = "", **fields) -> bool:
    """Move `task` from the status it has in memory to `to`. False (and nothing written) when the
    row has moved meanwhile: someone else won the race. IllegalTransition when not allowed."""
    current = task.status
    check(TASK_TRANSITIONS, f"task {task.alias}", current, to)
    if to in ("success", "failed", "cancelled", "skipped", "timed-out") and "finished" not in fields:
        fields["finished"] = timezone.now()
    if reason and "reason" not in fields and to != "running":
        fields["reason"] = reason
    with transaction.atomic():
        updated = TaskRun.objects.filter(pk=task.pk, status=current, attempt=task.attempt).update(status=to, **fields)
        if not updated:
            return False
        TaskRunTransition.objects.create(
            task_run_id=task.pk, from_status=current, to_status=to, attempt=fields.get("attempt", task.attempt),
            reason=reason[:2000],
        )
    task.status = to
    for key, value in fields.items():
        setattr(task, key, value)
    return True


def move_run(run: PipelineRun, to: str, reason: str = "", **fields) -> bool:
    """Move `run` to `to` (compare-and-set on its current status); see move_task."""
    current = run.status
    check(RUN_TRANSITIONS, f"run {run.pk}", current, to)
    now = timezone.now()
    if to == "running" and "started" not in fields:
        fields["started"] = now
    if to in ("success", "failed", "cancelled", "timed-out") and "finished" not in fields:
        fields["finished"] = now
    if reason and to != "running":
        fields.setdefault("reason", reason)
    with transaction.atomic():
        updated = PipelineRun.objects.filter(pk=run.pk, status=current).update(status=to, **fields)
        if not updated:
            return False
        PipelineRunTransition.objects.create(run_id=run.pk, from_status=current, to_status=to, reason=reason[:2000])
    run.status = to
    for key, value in fields.items():
        setattr(run, key, value)
    return True


def move_tasks(tasks: list[TaskRun], to: str, reason) -> list[TaskRun]:
    """move_task for many tasks in one transaction (the claim of a wide stage): each row is still
    compare-and-set on its own status and attempt; returns the tasks that moved. `reason` is a
    string or a function of the task."""
    if to != "running":
        raise ValueError("move_tasks only claims (to running); other moves set fields: use move_task")
    if not tasks:
        return []
    for task in tasks:
        check(TASK_TRANSITIONS, f"task {task.alias}", task.status, to)
    with transaction.atomic():
        moved = _still_as_read(tasks)
        if moved:
            TaskRun.objects.filter(pk__in=[task.pk for task in moved]).update(status=to)
        TaskRunTransition.objects.bulk_create([
            TaskRunTransition(task_run_id=task.pk, from_status=task.status, to_status=to, attempt=task.attempt,
                              reason=(reason(task) if callable(reason) else reason)[:2000])
            for task in moved
        ])
    for task in moved:
        task.status = to
    return moved


def finish_tasks(moves: list[tuple[TaskRun, str, str, dict]]) -> list[TaskRun]:
    """move_task for many tasks moving to a finished status in one transaction (the steps of a
    wide stage collected together): (task, to, reason, fields) each; a field one move sets and
    another does not keeps that task's value. Compare-and-set on each task's status and attempt,
    as move_task. Returns the tasks that moved. Their transitions are created in bulk and
    announced (post_save) as move_task's are."""
    if not moves:
        return []
    names = sorted({name for _, _, _, fields in moves for name in fields} | {"finished", "reason"})
    now = timezone.now()
    for task, to, _, _ in moves:
        check(TASK_TRANSITIONS, f"task {task.alias}", task.status, to)
        if to not in FINISHED_TASK:
            raise ValueError(f"finish_tasks moves to finished statuses only, not {to}")
    by_task = {task: (to, reason, {"finished": now, "reason": reason, **fields}) for task, to, reason, fields in moves}
    with transaction.atomic():
        moved = _still_as_read(list(by_task))
        if not moved:
            return []
        update_each({task: {"status": by_task[task][0],
                            **{name: by_task[task][2].get(name, getattr(task, name)) for name in names}}
                     for task in moved})
        transitions = TaskRunTransition.objects.bulk_create([
            TaskRunTransition(task_run_id=task.pk, from_status=task.status, to_status=by_task[task][0],
                              attempt=task.attempt, reason=by_task[task][1][:2000])
            for task in moved
        ])
        for transition in transitions:  # what move_task's create() announces (the log's end push)
            post_save.send(sender=TaskRunTransition, instance=transition, created=True, update_fields=None,
                           raw=False, using=connection.alias)
    for task in moved:
        to, _, values = by_task[task]
        task.status = to
        for key, value in values.items():
            setattr(task, key, value)
    return moved


def _still_as_read(tasks: list) -> list:
    """Of these tasks, those whose row still has the status and attempt read into them, locked
    for the rest of the caller's transaction: one locking read instead of a compare-and-set per
    row. Rows are locked in id order (PostgreSQL; SQLite's IMMEDIATE transaction already excludes
    every other writer), so what the read saw is what the caller's UPDATE changes."""
    wanted = {task.pk: task for task in tasks}
    current = (TaskRun.objects.select_for_update().filter(pk__in=wanted).order_by("pk")
               .values_list("pk", "status", "attempt"))
    return [wanted[pk] for pk, status, attempt in current
            if status == wanted[pk].status and attempt == wanted[pk].attempt]


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
    # One transaction (a caller's, without a savepoint): in autocommit each row would commit.
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.executemany(sql, rows)
