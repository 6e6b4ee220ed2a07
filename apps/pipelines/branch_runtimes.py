"""Branch runtimes expire: a runtime a push's pipeline deployed for its branch (the `dice` action's
default runtime, named after the branch) is torn down when its last deployment is older than the
project config `branch_runtime_days`, with the teardown in the audit log, like a preview
(apps.pipelines.previews).

- Unset (the default), branch runtimes stay: expiring a project's `main` unasked would take a
  running application down. Set it to a number of days > 0 to turn expiry on.
- Branches matching `branch_runtime_keep` (comma-separated globs; default `main, master, develop,
  release/*`) never expire: the long-lived ones.
- Only runtimes whose latest deployment came from a push run and whose name is that push's branch
  as the `dice` action names it: a runtime deployed by hand, by a merge request (its preview) or
  named explicitly by the pipeline is left alone.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from apps.deploy import deployments
from apps.deploy.models import Deployment, Runtime
from apps.pipelines.choices import TriggerKind
from apps.pipelines.models import PipelineRun, ProjectConfig
from apps.projects import audit
from pipelineyml.globs import glob_match

DAYS_KEY = "branch_runtime_days"
KEEP_KEY = "branch_runtime_keep"
DEFAULT_KEEP = ("main", "master", "develop", "release/*")
log = logging.getLogger(__name__)


def runtime_name(branch: str) -> str:
    """The runtime the `dice` action deploys a pushed branch to when the pipeline names none."""
    return branch.lower().replace("/", "-")


def _config(project_id: int, key: str) -> str | None:
    config = ProjectConfig.objects.filter(project_id=project_id, key=key).first()
    return config.plain_value().strip() if config is not None else None


def expiry_days(project_id: int) -> float | None:
    """The project's `branch_runtime_days` (> 0), None when unset or not a positive number (no expiry)."""
    value = _config(project_id, DAYS_KEY)
    try:
        days = float(value) if value else 0.0
    except ValueError:
        return None
    return days if days > 0 else None


def kept_branches(project_id: int) -> tuple[str, ...]:
    value = _config(project_id, KEEP_KEY)
    if value is None:
        return DEFAULT_KEEP
    return tuple(p.strip() for p in value.split(",") if p.strip())


def branch_of(runtime: Runtime, latest: Deployment | None) -> str | None:
    """The pushed branch a runtime was deployed for, None when it is not a branch runtime."""
    run_id = latest.release.pipeline_run_id if latest is not None else None
    if not run_id:
        return None
    run = PipelineRun.objects.filter(pk=run_id, application_id=runtime.application_id).first()
    if run is None or run.trigger != TriggerKind.PUSH:
        return None
    branch = str((run.trigger_payload or {}).get("branch") or "")
    return branch if branch and runtime_name(branch) == runtime.name else None


def expire(now=None) -> list[str]:
    """Tear down every branch runtime past its project's expiry (the periodic task). Returns notes."""
    now = now or timezone.now()
    notes = []
    projects = (ProjectConfig.objects.filter(key=DAYS_KEY).values_list("project_id", flat=True).distinct())
    for project_id in projects:
        days = expiry_days(project_id)
        if days is None:
            continue
        keep = kept_branches(project_id)
        cutoff = now - timedelta(days=days)
        runtimes = (Runtime.objects.filter(application__project_id=project_id)
                    .select_related("workspace", "cluster", "application__project__organization"))
        for runtime in runtimes:
            latest = runtime.deployments.select_related("release", "created_by").first()
            if latest is None or latest.created > cutoff:
                continue
            branch = branch_of(runtime, latest)
            if branch is None or any(glob_match(pattern, branch) for pattern in keep):
                continue
            notes.append(teardown(runtime, latest, branch, days))
    return notes


def teardown(runtime: Runtime, latest: Deployment, branch: str, days: float) -> str:
    name = str(runtime)
    try:
        deployments.delete_runtime(latest.created_by, runtime)
    except Exception as exc:  # a refused permission or an unreachable cluster: keep it, say so
        log.warning("branch runtime %s: could not remove it: %s", name, exc)
        return f"branch runtime {name} could not be removed: {exc}"
    with transaction.atomic():
        audit.record(None, "branch_runtime_teardown", runtime, before={
            "branch": branch, "runtime": runtime.name, "workspace": runtime.workspace.kind,
            "last_deployed": latest.created.isoformat(), "reason": f"expired: no deploy for {days:g} days"})
    return f"branch runtime {name} removed (branch {branch}, no deploy for {days:g} days)"
