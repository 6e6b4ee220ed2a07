"""Celery tasks of the pipeline engine. Each takes ids, re-reads its rows and is idempotent."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from apps.pipelines import branch_runtimes, builtin, engine, previews, triggers

# SQLite (standalone mode, tests) answers a busy database with OperationalError: every task is
# idempotent, so it is simply tried again a moment later.
RETRY = {"autoretry_for": (OperationalError,), "retry_kwargs": {"max_retries": 100, "countdown": 0.05},
         "retry_backoff": False, "acks_late": True}


def _dispatch(run_id: int | None) -> None:
    if run_id is not None:
        engine.dispatch(run_id)


@shared_task(name="dice.pipelines.start_runs", **RETRY)
def start_runs(project_id: int) -> list[int]:
    return engine.start_queued_runs(project_id)


@shared_task(name="dice.pipelines.dispatch_run", **RETRY)
def dispatch_run(run_id: int) -> list[int]:
    return engine.dispatch(run_id)


@shared_task(name="dice.pipelines.run_task", **RETRY)
def run_task(task_run_id: int) -> None:
    engine.start_task(task_run_id)


@shared_task(name="dice.pipelines.start_tasks", **RETRY)
def start_tasks(run_id: int, task_run_ids: list[int]) -> None:
    engine.start_tasks(run_id, task_run_ids)


@shared_task(name="dice.pipelines.on_tasks_finished", **RETRY)
def on_tasks_finished(task_run_ids: list[int]) -> None:
    engine.collect_many(task_run_ids)


@shared_task(name="dice.pipelines.on_task_finished", **RETRY)
def on_task_finished(task_run_id: int) -> None:
    engine.collect(task_run_id)


@shared_task(name="dice.pipelines.finish_wait", **RETRY)
def finish_wait(task_run_id: int, attempt: int) -> None:
    _dispatch(builtin.finish_wait(task_run_id, attempt))


@shared_task(name="dice.pipelines.check_timeout", **RETRY)
def check_timeout(task_run_id: int, attempt: int) -> None:
    _dispatch(builtin.check_timeout(task_run_id, attempt))


@shared_task(name="dice.pipelines.check_deployment", **RETRY)
def check_deployment(task_run_id: int, attempt: int) -> None:
    _dispatch(builtin.check_deployment(task_run_id, attempt))


@shared_task(name="dice.pipelines.resume_after_review", **RETRY)
def resume_after_review(task_run_id: int) -> None:
    _dispatch(builtin.resume_after_review(task_run_id))


@shared_task(name="dice.pipelines.reconcile", **RETRY)
def reconcile() -> dict:
    return engine.reconcile()


@shared_task(name="dice.pipelines.cron_run")
def cron_run(definition_id: int) -> int | None:
    run = triggers.run_from_cron(definition_id)
    return run.pk if run else None


@shared_task(name="dice.pipelines.expire_previews", **RETRY)
def expire_previews() -> list[str]:
    """Tear down merge requests' preview environments past their expiry (project config preview_days)."""
    return previews.expire()


@shared_task(name="dice.pipelines.expire_branch_runtimes", **RETRY)
def expire_branch_runtimes() -> list[str]:
    """Tear down pushed branches' runtimes past their expiry (project config branch_runtime_days)."""
    return branch_runtimes.expire()
