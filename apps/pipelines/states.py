"""The two state machines: moves are compare-and-set updates, refused when not allowed, and recorded."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from apps.pipelines.choices import RUN_TRANSITIONS, TASK_TRANSITIONS
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
    wanted = {task.pk: task for task in tasks}
    with transaction.atomic():
        # One locking read and one UPDATE instead of a compare-and-set per row: the rows are locked
        # (PostgreSQL; SQLite's IMMEDIATE transaction already excludes every other writer) in id
        # order, so what the read saw is what the UPDATE changes.
        current = (TaskRun.objects.select_for_update().filter(pk__in=wanted).order_by("pk")
                   .values_list("pk", "status", "attempt"))
        moved = [wanted[pk] for pk, status, attempt in current
                 if status == wanted[pk].status and attempt == wanted[pk].attempt]
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
