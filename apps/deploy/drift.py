"""Drift, as Argo CD shows it: whether a runtime runs what its release asks for ("in sync") or not
("out of sync", with the differences), asked of the runtime's cluster (Executor.drift, where the
kind's capabilities say it can tell), and the sync action: the release applied again."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from apps.clusters.services import capabilities
from apps.deploy import bundles, deployments
from apps.deploy.engines import runtime_executor
from apps.deploy.lifecycle import parse_for
from apps.deploy.models import Deployment, Runtime
from apps.deploy.rollout import build_group
from scheduler.base import ExecutorError

IN_SYNC, OUT_OF_SYNC, UNKNOWN = "in sync", "out of sync", "unknown"


def runtime_drift(runtime: Runtime) -> dict:
    """{"sync": in sync | out of sync | unknown, "reason", "release", "items": [{object, field,
    desired, live}]} for the runtime now."""
    answer = {"sync": UNKNOWN, "reason": "", "release": runtime.release.version if runtime.release else None,
              "items": []}
    if runtime.release is None:
        answer["reason"] = "no release was applied yet"
        return answer
    if not capabilities(runtime.cluster).drift:
        answer["reason"] = f"cluster {runtime.cluster.name} cannot tell drift"
        return answer
    deployment = (Deployment.objects.filter(runtime=runtime, release=runtime.release)
                  .select_related("release", "runtime__cluster", "runtime__workspace",
                                  "runtime__application__project__organization")
                  .order_by("-created", "-id").first())
    if deployment is None:
        answer["reason"] = "no deployment of its release"
        return answer
    try:
        group = build_group(deployment, parse_for(runtime.release, runtime.workspace.kind))
        found = runtime_executor(runtime).drift(group)  # the runtime's own cluster's part
    except (ExecutorError, ValidationError, bundles.WorkdirError) as exc:
        answer["reason"] = f"the cluster could not be compared: {exc}"
        return answer
    answer["sync"] = IN_SYNC if found.in_sync else OUT_OF_SYNC
    answer["items"] = [item.as_dict() for item in found.items]
    return answer


def sync(user, runtime: Runtime) -> Deployment:
    """Apply the runtime's release again (a new deployment): what drifted is put back."""
    if runtime.release is None:
        raise ValidationError({"runtime": f"{runtime} has no release to sync to"})
    return deployments.deploy(user, runtime.application, runtime.workspace, release=runtime.release,
                              runtime_name=runtime.name)
