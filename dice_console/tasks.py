"""Housekeeping tasks of the console itself."""

from celery import shared_task


@shared_task(name="dice.ping")
def ping() -> str:
    """Answers 'pong': proves a worker consumes from the broker."""
    return "pong"
