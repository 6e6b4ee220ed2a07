"""A deployment's state machine: transition() checks ALLOWED_TRANSITIONS under a row lock,
records the change and pushes it to the runtime's viewers after the commit; progress is stored
and pushed the same way. Used by the operations (deployments.py), the rollout and the tasks."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.deploy.choices import ACTIVE_STATUSES, FINAL_STATUSES, DeploymentStatus
from apps.deploy.models import Deployment, DeploymentTransition, Release
from dice_console import realtime
from diceyml import DiceYml, parse_dice_yml
from speckit.errors import SpecInvalid


class IllegalTransition(ValidationError):
    """A status change the state machine does not allow (e.g. healthy -> deploying)."""


def runtime_group(runtime_id: int) -> str:
    """The Channels group that hears a runtime's deployment progress."""
    return f"runtime-{runtime_id}"


def parse_for(release: Release, workspace_kind: str) -> DiceYml:
    try:
        return parse_dice_yml(release.spec_text, source=release.source_name, workspace=workspace_kind)
    except SpecInvalid as exc:
        raise ValidationError({"release": [str(e) for e in exc.errors]}) from None


# ---- the state machine ----------------------------------------------------------------------------


def _push(deployment: Deployment) -> None:
    """Tell the runtime's viewers, after the commit, that a deployment changed."""
    payload = {
        "type": "deployment.progress",
        "deployment": deployment.pk,
        "status": deployment.status,
        "message": deployment.message,
        "progress": deployment.progress,
    }
    group = runtime_group(deployment.runtime_id)

    transaction.on_commit(lambda: realtime.group_send(group, payload))


def push_changed(runtime_id: int, action: str) -> None:
    """Tell the runtime's viewers, after the commit, that an operation changed it (scale...)."""
    payload = {"type": "runtime.changed", "runtime": runtime_id, "action": action}
    group = runtime_group(runtime_id)

    transaction.on_commit(lambda: realtime.group_send(group, payload))


def record_progress(deployment: Deployment, progress: dict) -> None:
    """Store the per-service progress (only while the deployment is active) and push it."""
    with transaction.atomic():
        updated = Deployment.objects.filter(pk=deployment.pk, status__in=ACTIVE_STATUSES).update(
            progress=progress, heartbeat=timezone.now()
        )
        if updated:
            deployment.progress = progress
            _push(deployment)


def transition(deployment: Deployment, to: str, reason: str = "") -> Deployment:
    """Move the deployment to `to` if the state machine allows it from its current (re-read) status;
    IllegalTransition otherwise. Records a DeploymentTransition and pushes the change after commit."""
    with transaction.atomic():
        locked = Deployment.objects.select_for_update().get(pk=deployment.pk)
        if not locked.can_transition(to):
            raise IllegalTransition(
                {"status": f"deployment #{locked.pk} cannot go from {locked.status} to {to}"}
            )
        now = timezone.now()
        before = locked.status
        locked.status = to
        fields = ["status"]
        if to == DeploymentStatus.DEPLOYING and locked.started is None:
            locked.started = now
            fields.append("started")
        if to in FINAL_STATUSES:
            locked.finished = now
            locked.message = reason
            fields += ["finished", "message"]
        locked.save(update_fields=fields)
        DeploymentTransition.objects.create(deployment=locked, from_status=before, to_status=to, reason=reason)
        _push(locked)
    for field in ("status", "started", "finished", "message"):
        setattr(deployment, field, getattr(locked, field))
    return deployment


