"""Handing pipeline work to Celery workers by task name (the tasks are apps.pipelines.tasks).

The engine, the built-in actions, the step monitor and the services enqueue work here rather
than importing the task module, which calls back into each of them: a message names the work,
it does not need its code."""

from __future__ import annotations

from celery import current_app

PREFIX = "dice.pipelines."


def longest_countdown() -> float | None:
    """Seconds a delayed message may wait in a worker: Redis gives a message that was taken but not
    acknowledged to another consumer after its visibility timeout, so a longer delay would run
    twice. The timers (builtin.finish_wait, check_timeout) are sent for at most half of it and
    send themselves again until their deadline, read from the database, has come."""
    options = current_app.conf.broker_transport_options or {}
    visibility = options.get("visibility_timeout")
    return float(visibility) / 2 if visibility else None


def send(name: str, *args, countdown: float | None = None) -> None:
    """Enqueue the task `dice.pipelines.<name>` with these arguments (after `countdown` seconds, at
    most longest_countdown()). Through the registered task object, so eager mode and the embedded
    worker apply as to .delay()."""
    task = current_app.tasks[PREFIX + name]
    longest = longest_countdown()
    if countdown is not None and longest is not None:
        countdown = min(countdown, longest)
    if countdown is None:
        task.delay(*args)
    else:
        task.apply_async(args, countdown=countdown)
