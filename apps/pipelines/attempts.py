"""Ending a task's attempt: back to queued after its backoff when it failed and attempts are
left, else its final status. Used by the engine and by the built-in actions."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from apps.pipelines import queue, reference, states, steplogs
from apps.pipelines.choices import TaskStatus
from apps.pipelines.models import TaskRun


def conclude(task: TaskRun, status: str, reason: str = "", *, outputs: dict | None = None,
             exit_code: int | None = None, finished: dt.datetime | None = None, retry: bool = True) -> bool:
    """End the task's current attempt: retry it after its backoff when attempts are left and it
    failed or timed out, else move it to `status`. The caller dispatches the run afterwards."""
    if status in (TaskStatus.FAILED, TaskStatus.TIMED_OUT) and retry and task.attempt < task.max_attempts:
        pipeline = reference.pipeline_of(task.run)
        backoff = pipeline.action(task.alias).retry.backoff
        moved = states.move_task(
            task, TaskStatus.QUEUED, f"attempt {task.attempt} {status}: {reason}; retrying in {backoff:g}s",
            attempt=task.attempt + 1, not_before=timezone.now() + dt.timedelta(seconds=backoff),
            job_name="", log_cursor=0, exit_code=exit_code, finished=None,
        )
        if moved:
            steplogs.append_lines(task, [f"attempt {task.attempt - 1} {status}: {reason}; retry in {backoff:g}s"])
            queue.send("dispatch_run", task.run_id, countdown=backoff)
        return moved
    fields = {"exit_code": exit_code, "finished": finished or timezone.now()}
    if outputs is not None:
        fields["outputs"] = outputs
    return states.move_task(task, status, reason, **fields)
