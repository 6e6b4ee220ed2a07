"""Worker lifecycle hook of the deploy app: a starting worker resumes the rollouts no live thread
follows (apps.deploy.tasks.reconcile_deployments with at_start), without waiting for the
periodic reconciler or for their heartbeat to go stale."""

from __future__ import annotations

from celery import current_app, signals
from django.conf import settings


def _on_worker_init(sender=None, **kwargs) -> None:
    if getattr(settings, "DICE_DEPLOY_RECONCILE_ON_START", True):
        current_app.tasks["dice.deploy.reconcile"].apply_async(kwargs={"at_start": True})


def connect() -> None:
    signals.worker_init.connect(_on_worker_init, weak=False, dispatch_uid="dice-deploy-worker-init")
