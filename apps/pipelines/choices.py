"""Choices of the pipeline models, and the allowed transitions of each state machine."""

from django.db import models


class RunStatus(models.TextChoices):
    # Created, waiting for a slot under the project's concurrent-run limit.
    QUEUED = "queued", "Queued"
    # Its tasks are being dispatched; at least one is not finished.
    RUNNING = "running", "Running"
    # Every task succeeded or was skipped by its `if`.
    SUCCESS = "success", "Success"
    # A task failed or timed out (the others were skipped or finished).
    FAILED = "failed", "Failed"
    # Someone cancelled it; running steps were stopped on their cluster.
    CANCELLED = "cancelled", "Cancelled"
    # Never used by the engine for a run as a whole; kept so both machines share one vocabulary.
    SKIPPED = "skipped", "Skipped"
    # The run as a whole exceeded its deadline (not enforced yet: tasks have their own timeouts).
    TIMED_OUT = "timed-out", "Timed out"


class TaskStatus(models.TextChoices):
    # Waiting for its dependencies, a backoff, or a free slot.
    QUEUED = "queued", "Queued"
    # Claimed by the engine: its step is starting or running (or, for manual-review, waiting).
    RUNNING = "running", "Running"
    # The step exited 0 (or the built-in action succeeded).
    SUCCESS = "success", "Success"
    # The step exited non-zero after its last attempt, or a built-in action failed.
    FAILED = "failed", "Failed"
    # The run was cancelled while this task was queued or running.
    CANCELLED = "cancelled", "Cancelled"
    # Not run: its `if` was false, it was disabled, or a dependency did not succeed.
    SKIPPED = "skipped", "Skipped"
    # The step ran longer than its `timeout`.
    TIMED_OUT = "timed-out", "Timed out"


FINISHED_RUN = frozenset({RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.SKIPPED,
                          RunStatus.TIMED_OUT})
FINISHED_TASK = frozenset({TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.SKIPPED,
                           TaskStatus.TIMED_OUT})
# A dependency in one of these makes its successors skipped.
BLOCKING_TASK = frozenset({TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.TIMED_OUT})

RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.FAILED}),
    RunStatus.RUNNING: frozenset({RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT}),
    RunStatus.SUCCESS: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELLED: frozenset(),
    RunStatus.SKIPPED: frozenset(),
    RunStatus.TIMED_OUT: frozenset(),
}

TASK_TRANSITIONS: dict[str, frozenset[str]] = {
    TaskStatus.QUEUED: frozenset({TaskStatus.RUNNING, TaskStatus.SKIPPED, TaskStatus.CANCELLED}),
    # running -> queued: a failed attempt waits for its retry (backoff).
    TaskStatus.RUNNING: frozenset({TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.CANCELLED,
                                   TaskStatus.SKIPPED, TaskStatus.TIMED_OUT, TaskStatus.QUEUED}),
    TaskStatus.SUCCESS: frozenset(),
    TaskStatus.FAILED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
    TaskStatus.SKIPPED: frozenset(),
    TaskStatus.TIMED_OUT: frozenset(),
}


class TriggerKind(models.TextChoices):
    # Someone pressed Run (page, API or `dice pipeline run`).
    MANUAL = "manual", "Manual"
    # The definition's `cron` fired (django-celery-beat).
    CRON = "cron", "Cron"
    # A git push webhook matched `on.push`.
    PUSH = "push", "Git push"
    # A merge (pull) request webhook matched `on.merge`.
    MERGE = "merge", "Merge request"
    # Started by re-running an earlier run.
    RERUN = "rerun", "Re-run"


class LogStream(models.TextChoices):
    STDOUT = "stdout", "stdout"
    STDERR = "stderr", "stderr"
    # Lines written by the agent or the engine themselves (restores, attempts, results).
    SYSTEM = "system", "system"


class Executor(models.TextChoices):
    # A job on the workspace's cluster, run by the agent.
    CLUSTER = "cluster", "Cluster job"
    # A built-in action run inside the Celery worker (release, dice, manual-review, wait, echo).
    WORKER = "worker", "Console worker"
