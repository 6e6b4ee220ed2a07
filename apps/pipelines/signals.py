"""Worker lifecycle hooks: a starting worker re-adopts running steps (the reconciler) and starts
the step monitor; a stopping worker stops the monitor. And an application's hosted repository
goes with the application (deleted itself, or with its project or organization)."""

from __future__ import annotations

import logging

from celery import signals
from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from apps.pipelines import monitor, queue, repos
from apps.projects.models import Application

log = logging.getLogger(__name__)


def _on_worker_init(sender=None, **kwargs) -> None:
    if getattr(settings, "DICE_PIPELINE_RECONCILE_ON_START", True):
        queue.send("reconcile", countdown=0)


def _on_worker_shutdown(sender=None, **kwargs) -> None:
    monitor.stop()


def _remove_repository(application_id: int, why: str) -> None:
    try:
        if repos.remove(application_id):
            log.info("removed the hosted repository of application %s (%s)", application_id, why)
    except OSError as exc:  # the delete is committed: say what is left, never undo it
        log.error("could not remove the hosted repository of application %s: %s", application_id, exc)


def _on_application_deleted(sender, instance, **kwargs) -> None:
    # After the commit: a rolled-back delete keeps its repository.
    pk = instance.pk
    transaction.on_commit(lambda: _remove_repository(pk, "application deleted"))


def _on_application_saved(sender, instance, created, raw=False, **kwargs) -> None:
    if created and not raw:  # not a fixture being loaded: that brings its repositories along
        pk = instance.pk
        transaction.on_commit(lambda: _remove_repository(pk, "left at a new application's id"))


def connect() -> None:
    post_delete.connect(_on_application_deleted, sender=Application, dispatch_uid="dice-pipelines-repo-delete")
    post_save.connect(_on_application_saved, sender=Application, dispatch_uid="dice-pipelines-repo-create")
    signals.worker_init.connect(_on_worker_init, weak=False, dispatch_uid="dice-pipelines-worker-init")
    signals.worker_shutdown.connect(_on_worker_shutdown, weak=False, dispatch_uid="dice-pipelines-worker-shutdown")
