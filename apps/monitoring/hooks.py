"""Where the console's events become notifications: a deployment ending healthy or failed and a
pipeline run ending succeeded or failed are heard from their transition history rows (every move
of the shared state machine announces its history row with post_save), so the deploy and pipeline
code need not know that anyone listens."""

from __future__ import annotations

import logging

from django.db.models.signals import post_save

from apps.deploy.models import DeploymentTransition
from apps.monitoring import services
from apps.monitoring.choices import NotifyEvent
from apps.pipelines.models import PipelineRunTransition

log = logging.getLogger(__name__)

_DEPLOYMENT_EVENTS = {"healthy": NotifyEvent.DEPLOYMENT_HEALTHY, "failed": NotifyEvent.DEPLOYMENT_FAILED}
_RUN_EVENTS = {"success": NotifyEvent.PIPELINE_SUCCEEDED, "failed": NotifyEvent.PIPELINE_FAILED,
               "timed-out": NotifyEvent.PIPELINE_FAILED}


def _deployment_moved(sender, instance: DeploymentTransition, created: bool, **kwargs) -> None:
    event = _DEPLOYMENT_EVENTS.get(instance.to_status)
    if not created or event is None:
        return
    try:
        deployment = instance.deployment
        runtime = deployment.runtime
        project = runtime.application.project
        what = "is healthy" if event == NotifyEvent.DEPLOYMENT_HEALTHY else "failed"
        services.notify(project, event, f"Deployment #{deployment.pk} of {runtime} {what}", {
            "deployment": deployment.pk, "runtime": runtime.pk, "application": runtime.application.slug,
            "workspace": runtime.workspace.kind, "runtime_name": runtime.name, "release": deployment.release_id,
            "status": instance.to_status, "reason": instance.reason,
        }, url=runtime.get_absolute_url())
    except Exception:  # a notification never breaks the deployment it reports
        log.exception("notify: deployment transition %s", instance.pk)


def _run_moved(sender, instance: PipelineRunTransition, created: bool, **kwargs) -> None:
    event = _RUN_EVENTS.get(instance.to_status)
    if not created or event is None:
        return
    try:
        run = instance.run
        app = run.application
        what = "succeeded" if event == NotifyEvent.PIPELINE_SUCCEEDED else instance.to_status
        name = run.name or "pipeline"
        services.notify(app.project, event, f"Pipeline {name} run #{run.pk} of {app.slug} {what}", {
            "run": run.pk, "application": app.slug, "pipeline": name, "workspace": run.workspace,
            "status": instance.to_status, "reason": instance.reason, "trigger": run.trigger,
        }, url=run.get_absolute_url())
    except Exception:
        log.exception("notify: pipeline run transition %s", instance.pk)


def connect() -> None:
    post_save.connect(_deployment_moved, sender=DeploymentTransition, dispatch_uid="monitoring-deployment-notify")
    post_save.connect(_run_moved, sender=PipelineRunTransition, dispatch_uid="monitoring-run-notify")
