"""Celery tasks of the deploy app: one rollout per deployment, and the reconciler that resumes
rollouts whose worker went away. Each takes ids, re-reads its rows and is idempotent. The beat
entry of the reconciler is created by migration 0003 (django-celery-beat)."""

from __future__ import annotations

import datetime
import logging

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from apps.deploy import cmdb_feed, rollout
from apps.deploy.choices import ACTIVE_STATUSES, DeploymentStatus
from apps.deploy.engines import runtime_executor
from apps.deploy.lifecycle import IllegalTransition, transition
from apps.deploy.models import Deployment
from apps.deploy.refs import runtime_ref
from scheduler.base import ExecutorError, Health

log = logging.getLogger(__name__)

# Seconds without a heartbeat before a rollout counts as orphaned: its follower beats every
# rollout.HEARTBEAT (5 s), so this is several missed beats.
STALE_AFTER = 30


def _record(result: dict) -> None:
    cmdb_feed.record_quietly(result["deployment"])  # only an ended deployment is recorded


@shared_task(name="dice.deploy.run_deployment", acks_late=True, bind=True)
def run_deployment(self, deployment_id: int) -> dict:
    """Apply the deployment's release and follow it to healthy or failed (apps.deploy.rollout).

    In a worker the task returns once the release is applied: a thread of the worker process
    follows the rollout (the message is acknowledged, so the broker never hands it out again
    while the rollout runs). Called directly or eagerly, it follows to the end and returns the
    final status."""
    if self.request.called_directly or self.request.is_eager:
        result = rollout.run(deployment_id)
        _record(result)
        return result
    if rollout.followed_here(deployment_id):
        return {"deployment": deployment_id, "skipped": "followed by this worker"}
    result = rollout.run(deployment_id, follow=False)
    if result.get("status") != "following":
        _record(result)
    return result


@shared_task(name="dice.deploy.reconcile")
def reconcile_deployments(at_start: bool = False) -> dict:
    """Find rollouts no worker is following (no heartbeat for STALE_AFTER seconds, e.g. after a
    worker restart): one the cluster already reports healthy is marked healthy, the others are
    dispatched again (the task resumes them: re-apply is idempotent, the time limit still counts
    from the first start). `at_start`: a worker that has just started takes every active rollout
    that no thread of its own follows, without waiting for the heartbeat to go stale (its
    predecessor may have died a second ago; a rollout another live worker follows is then
    followed twice for a while, and the second transition is refused)."""
    stale = timezone.now() - datetime.timedelta(seconds=getattr(settings, "DICE_DEPLOY_STALE_AFTER", STALE_AFTER))
    if at_start:
        stale = timezone.now() + datetime.timedelta(seconds=1)
    found = {"healthy": [], "redispatched": []}
    candidates = Deployment.objects.filter(status__in=ACTIVE_STATUSES).select_related(
        "runtime__application__project__organization", "runtime__workspace", "runtime__cluster"
    )
    for deployment in candidates:
        last = deployment.heartbeat or deployment.created
        if last > stale or rollout.followed_here(deployment.pk):
            continue
        if deployment.status == DeploymentStatus.DEPLOYING and deployment.attempts:
            try:
                status = runtime_executor(deployment.runtime).status(runtime_ref(deployment.runtime))
            except ExecutorError as exc:
                log.warning("reconcile: status of %s failed: %s", deployment.runtime, exc)
                status = None
            if status is not None and status.health == Health.HEALTHY:
                try:
                    transition(deployment, DeploymentStatus.HEALTHY, "found healthy by the reconciler")
                    found["healthy"].append(deployment.pk)
                except IllegalTransition:
                    pass
                continue
        # Count this as a beat, so the next pass waits for the new task before trying again.
        Deployment.objects.filter(pk=deployment.pk).update(heartbeat=timezone.now())
        run_deployment.delay(deployment.pk)
        found["redispatched"].append(deployment.pk)
    return found
