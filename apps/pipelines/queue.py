"""Handing pipeline work to Celery workers by task name (the tasks are apps.pipelines.tasks).

The engine, the built-in actions, the step monitor and the services enqueue work here rather
than importing the task module, which calls back into each of them: a message names the work,
it does not need its code."""

from __future__ import annotations

from celery import current_app

PREFIX = "dice.pipelines."


def send(name: str, *args, countdown: float | None = None) -> None:
    """Enqueue the task `dice.pipelines.<name>` with these arguments (after `countdown` seconds).
    Through the registered task object, so eager mode and the embedded worker apply as to .delay()."""
    task = current_app.tasks[PREFIX + name]
    if countdown is None:
        task.delay(*args)
    else:
        task.apply_async(args, countdown=countdown)
