"""Preview environments of merge (pull) requests: a run started by a merge request deploys to the
DEV runtime `pr-<number>`; when it is healthy the preview (its URL, the run) is recorded; closing
or merging the request, deleting its branch, or its expiry (project config `preview_days`,
default 7, counted from its last deploy) tears the runtime down, with the teardown in the audit
log."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from apps.deploy import deployments
from apps.deploy.models import Runtime
from apps.monitoring import services as monitoring
from apps.monitoring.choices import NotifyEvent
from apps.pipelines.models import PipelineRun, PreviewEnvironment, ProjectConfig
from apps.projects import audit
from apps.projects.models import Application

PREVIEW_DAYS_KEY = "preview_days"
DEFAULT_DAYS = 7
PREVIEW_WORKSPACE = "DEV"
log = logging.getLogger(__name__)


def preview_number(run: PipelineRun) -> int | None:
    """The merge request number of a run a merge request started, else None."""
    payload = run.trigger_payload or {}
    number = payload.get("number")
    if payload.get("event") != "merge" or not isinstance(number, int) or number <= 0:
        return None
    return number


def runtime_name(number: int) -> str:
    return f"pr-{number}"


def preview_days(project_id: int) -> float:
    """The project's `preview_days` config (a number of days > 0), else DEFAULT_DAYS."""
    config = ProjectConfig.objects.filter(project_id=project_id, key=PREVIEW_DAYS_KEY).first()
    try:
        days = float(config.plain_value()) if config else DEFAULT_DAYS
    except (TypeError, ValueError):
        return DEFAULT_DAYS
    return days if days > 0 else DEFAULT_DAYS


def record(run: PipelineRun, runtime: Runtime) -> PreviewEnvironment | None:
    """After a merge request's run deployed its preview runtime: keep (or refresh) the preview,
    with the runtime's URL and a new expiry."""
    number = preview_number(run)
    if number is None or runtime.name != runtime_name(number):
        return None
    payload = run.trigger_payload or {}
    expires = timezone.now() + timedelta(days=preview_days(run.application.project_id))
    preview, _ = PreviewEnvironment.objects.update_or_create(
        application_id=run.application_id, number=number,
        defaults={"branch": str(payload.get("source_branch") or payload.get("branch") or "")[:255],
                  "title": str(payload.get("title") or "")[:255], "runtime": runtime, "run": run,
                  "url": deployments.runtime_url(runtime)[:500], "expires": expires})
    return preview


def teardown(preview: PreviewEnvironment, why: str) -> str:
    """Remove the preview's runtime and the preview (an unsaved one: only its runtime, if any); the
    audit log says why. Returns a note."""
    name = preview.runtime_name
    runtime = (Runtime.objects.filter(application_id=preview.application_id, workspace__kind=PREVIEW_WORKSPACE,
                                      name=name)
               .select_related("workspace", "cluster", "application__project__organization").first())
    if runtime is None and not preview.pk:
        return f"no preview {name} runs: nothing to remove"
    if runtime is not None:
        latest = runtime.deployments.exclude(created_by=None).select_related("created_by").first()
        try:
            deployments.delete_runtime(latest.created_by if latest else None, runtime)
        except Exception as exc:  # a refused permission or an unreachable cluster: keep the row, say so
            log.warning("preview %s of %s: could not remove its runtime: %s", name, preview.application_id, exc)
            return f"preview {name} could not be removed: {exc}"
    with transaction.atomic():
        audit.record(None, "preview_teardown", preview, before={
            "number": preview.number, "branch": preview.branch, "url": preview.url, "runtime": name, "reason": why})
        if preview.pk:
            preview.delete()
        application = Application.objects.select_related("project").get(pk=preview.application_id)
        monitoring.notify(application.project, NotifyEvent.PREVIEW_TORN_DOWN,
                          f"Preview {name} of {application.slug} torn down: {why}",
                          {"application": application.slug, "workspace": PREVIEW_WORKSPACE, "runtime_name": name,
                           "number": preview.number, "branch": preview.branch, "reason": why})
    return f"preview {name} removed ({why})"


def teardown_for_merge_end(application, number: int | None, action: str) -> list[str]:
    """A closed or merged request: its preview goes, recorded or not (a deploy that never became
    healthy still left a runtime)."""
    if not number:
        return [f"merge request {action}: it names no number, no preview to remove"]
    preview = (PreviewEnvironment.objects.filter(application=application, number=number).first()
               or PreviewEnvironment(application=application, number=number))
    return [teardown(preview, f"merge request {number} {action}")]


def teardown_for_branch(application, branch: str) -> list[str]:
    return [teardown(preview, f"branch {branch} deleted")
            for preview in PreviewEnvironment.objects.filter(application=application, branch=branch)]


def expire(now=None) -> list[str]:
    """Tear down every preview past its expiry (the periodic task)."""
    now = now or timezone.now()
    return [teardown(preview, "expired")
            for preview in PreviewEnvironment.objects.filter(expires__lte=now).select_related("application")]
