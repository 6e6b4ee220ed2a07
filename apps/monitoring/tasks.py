"""Celery tasks of the monitoring app: one attempt per delivery, and the sweep that sends what is
due (a retry whose message was lost, a claim whose worker died). Both take ids and are idempotent."""

from __future__ import annotations

from celery import shared_task

from apps.monitoring import alerts, metrics, services


@shared_task(name=services.TASK, acks_late=True)
def deliver(delivery_id: int) -> dict:
    """Send one delivery once; a failure queues the next attempt after its delay."""
    result = services.attempt(delivery_id)
    if result.get("retry_in") is not None:
        services.queue_retry(delivery_id, result["retry_in"])
    return result


@shared_task(name="dice.monitoring.sweep")
def sweep() -> dict:
    """Attempt every due delivery (the safety net under the queue; beat runs it every minute)."""
    done = [services.attempt(pk) for pk in services.due_deliveries()]
    return {"attempted": len(done), "sent": sum(1 for d in done if d.get("sent"))}


@shared_task(name="dice.monitoring.collect")
def collect() -> dict:
    """Measure every deployed runtime through its cluster's engine (beat: DICE_METRICS_INTERVAL),
    then evaluate the alert rules on what was measured."""
    return {**metrics.collect_all(), "alerts": alerts.evaluate_all()}


@shared_task(name="dice.monitoring.rollup")
def rollup() -> dict:
    """Five-minute averages of what was collected, and retention (beat: every five minutes)."""
    return {"averaged": metrics.rollup(), "expired": metrics.expire()}
