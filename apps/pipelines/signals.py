"""Worker lifecycle hooks: a starting worker re-adopts running steps (the reconciler) and starts
the step monitor; a stopping worker stops the monitor."""

from __future__ import annotations

from celery import signals
from django.conf import settings

from apps.pipelines import monitor, queue


def _on_worker_init(sender=None, **kwargs) -> None:
    if getattr(settings, "DICE_PIPELINE_RECONCILE_ON_START", True):
        queue.send("reconcile", countdown=0)


def _on_worker_shutdown(sender=None, **kwargs) -> None:
    monitor.stop()


def connect() -> None:
    signals.worker_init.connect(_on_worker_init, weak=False, dispatch_uid="dice-pipelines-worker-init")
    signals.worker_shutdown.connect(_on_worker_shutdown, weak=False, dispatch_uid="dice-pipelines-worker-shutdown")
