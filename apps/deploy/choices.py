"""Choices of the deploy models, and the deployment state machine's allowed transitions."""

from django.db import models


class DeploymentStatus(models.TextChoices):
    # Made and handed to a worker; nothing has been applied yet.
    QUEUED = "queued", "Queued"
    # The release was (or is being) applied to the cluster; waiting for every addon and service to be ready.
    DEPLOYING = "deploying", "Deploying"
    # Every addon and service of the release reported ready: the rollout succeeded.
    HEALTHY = "healthy", "Healthy"
    # Refused by the cluster, unhealthy for too long, or not ready in time; `message` says why.
    FAILED = "failed", "Failed"
    # Stopped by a person before it finished; what was already applied stays.
    CANCELLED = "cancelled", "Cancelled"
    # A newer deployment of the same runtime replaced it before it finished.
    SUPERSEDED = "superseded", "Superseded"


S = DeploymentStatus

# from -> the statuses it may move to. Healthy, failed, cancelled and superseded are final.
ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    S.QUEUED: frozenset({S.DEPLOYING, S.FAILED, S.CANCELLED, S.SUPERSEDED}),
    S.DEPLOYING: frozenset({S.HEALTHY, S.FAILED, S.CANCELLED, S.SUPERSEDED}),
    S.HEALTHY: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
    S.SUPERSEDED: frozenset(),
}

# A deployment in one of these still has work to do (a task should be running for it).
ACTIVE_STATUSES = frozenset({S.QUEUED, S.DEPLOYING})
FINAL_STATUSES = frozenset(ALLOWED_TRANSITIONS) - ACTIVE_STATUSES
