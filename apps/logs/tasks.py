"""Celery tasks of the logs app."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="dice.logs.expire")
def expire() -> int:
    """Beat runs this hourly: drop logs older than DICE_LOG_RETENTION_DAYS."""
    from apps.logs import services

    return services.expire_logs()
