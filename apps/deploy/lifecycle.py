"""A deployment's state machine (on the shared mechanism, dice_console.statemachine): transition()
checks ALLOWED_TRANSITIONS under the row's lock, records the change and pushes it to the runtime's
viewers after the commit; progress is stored and pushed the same way. Used by the operations
(deployments.py), the rollout and the tasks."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.deploy.choices import ACTIVE_STATUSES, ALLOWED_TRANSITIONS, FINAL_STATUSES, DeploymentStatus
from apps.deploy.models import Deployment, DeploymentTransition, Release
from dice_console.statemachine import IllegalTransition, Machine, Move, push_after_commit
from diceyml import DiceYml, parse_dice_yml
from speckit.errors import SpecInvalid

__all__ = ["IllegalTransition", "parse_for", "push_changed", "record_progress", "runtime_group", "transition"]


def runtime_group(runtime_id: int) -> str:
    """The Channels group that hears a runtime's deployment progress."""
    return f"runtime-{runtime_id}"


def parse_for(release: Release, workspace_kind: str) -> DiceYml:
    try:
        return parse_dice_yml(release.spec_text, source=release.source_name, workspace=workspace_kind)
    except SpecInvalid as exc:
        raise ValidationError({"release": [str(e) for e in exc.errors]}) from None


# ---- the state machine ----------------------------------------------------------------------------


def _progress_payload(deployment: Deployment) -> dict:
    return {
        "type": "deployment.progress",
        "deployment": deployment.pk,
        "status": deployment.status,
        "message": deployment.message,
        "progress": deployment.progress,
    }


def push_changed(runtime_id: int, action: str) -> None:
    """Tell the runtime's viewers, after the commit, that an operation changed it (scale...)."""
    push_after_commit(runtime_group(runtime_id), {"type": "runtime.changed", "runtime": runtime_id, "action": action})


def record_progress(deployment: Deployment, progress: dict) -> None:
    """Store the per-service progress (only while the deployment is active) and push it."""
    with transaction.atomic():
        updated = Deployment.objects.filter(pk=deployment.pk, status__in=ACTIVE_STATUSES).update(
            progress=progress, heartbeat=timezone.now()
        )
        if updated:
            deployment.progress = progress
            push_after_commit(runtime_group(deployment.runtime_id), _progress_payload(deployment))


def _pushed_move(deployment: Deployment, before: str, to: str, reason: str) -> tuple[str, dict]:
    """What a status change tells the runtime's viewers (after the commit)."""
    return runtime_group(deployment.runtime_id), {**_progress_payload(deployment), "status": to}


DEPLOYMENTS = Machine(
    Deployment, DeploymentTransition, "deployment", ALLOWED_TRANSITIONS,
    lambda d: f"deployment #{d.pk}", push=_pushed_move,
)


def transition(deployment: Deployment, to: str, reason: str = "") -> Deployment:
    """Move the deployment to `to` if the state machine allows it from its current (re-read, under
    the row's lock) status; IllegalTransition otherwise. Records a DeploymentTransition and pushes
    the change after commit (dice_console.statemachine)."""
    now = timezone.now()
    fields: dict = {}
    if to in FINAL_STATUSES:
        fields = {"finished": now, "message": reason}
    with transaction.atomic():
        current = Deployment.objects.select_for_update().filter(pk=deployment.pk).values_list(
            "status", "started", "message", "progress").first()
        if current is None:
            raise Deployment.DoesNotExist(f"deployment #{deployment.pk} no longer exists")
        deployment.status, deployment.started, deployment.message, deployment.progress = current
        if to == DeploymentStatus.DEPLOYING and deployment.started is None:
            fields["started"] = now
        if "message" in fields:
            deployment.message = fields["message"]
        DEPLOYMENTS.move_many([Move(deployment, to, reason, fields)],
                              locked={deployment.pk: {"status": deployment.status}})
    return deployment
