"""Triggers other than a person: cron (one django-celery-beat PeriodicTask per definition) and git
webhooks (GitHub, GitLab, Gitea; read by apps.pipelines.webhooks), matched against `on.push`,
`on.merge` and the project's branch rules.

Webhook secret: the project config `webhook_secret` (make it secret). A push is matched like this:
the definition's `on.push.branches` (or `tags`) match the pushed branch (tag) by the providers'
glob rules (pipelineyml.globs: `*` stops at `/`, `**` does not); then the project's branch
rules, lowest priority first, give the workspace. A project without any branch rule runs pushes
in DEV; a project with rules runs nothing for a branch no rule matches. A merge request whose
target branch `on.merge.branches` lists runs in DEV (its code is not reviewed yet). A push that
deletes a branch starts nothing: it removes the branch's runtime in DEV or TEST, if one runs.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.pipelines.choices import TriggerKind
from apps.pipelines.models import BranchRule, PipelineDefinition, PipelineRun, ProjectConfig, WebhookDelivery
from apps.pipelines.webhooks import GitEvent
from pipelineyml import PipelineYml
from pipelineyml.globs import glob_match, matches_any

WEBHOOK_SECRET_KEY = "webhook_secret"
DELIVERY_MEMORY = timedelta(days=1)  # a delivery id seen within this is a replay
log = logging.getLogger(__name__)


# ---- cron ------------------------------------------------------------------------------------


def cron_task_name(definition: PipelineDefinition) -> str:
    return f"pipeline-definition-{definition.pk}"


MIN_INTERVAL = 60  # seconds: the shortest `@every` a definition may ask for
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def crontab_fields(cron: str) -> dict[str, str]:
    """5 fields (minute hour day month weekday), 6 with seconds first (dropped: beat ticks by the
    minute), or 7 with a year last (only `*`/`?`: a crontab cannot name years); `?` is `*`.
    ValueError naming the problem for anything a crontab schedule cannot express."""
    if cron.startswith("@"):
        presets = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
                   "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
        if cron not in presets:
            raise ValueError(f"cron {cron!r}: unknown descriptor")
        cron = presets[cron]
    parts = [p.replace("?", "*") for p in cron.split()]
    if len(parts) == 7:
        if parts[6] != "*":
            raise ValueError(f"cron {cron!r}: the year field must be * or ? (a schedule cannot be limited to years)")
        parts = parts[:6]
    if len(parts) == 6:
        parts = parts[1:]
    if len(parts) != 5:
        raise ValueError(f"cron {cron!r}: expected 5, 6 or 7 fields, found {len(parts)}")
    minute, hour, day, month, weekday = parts
    return {"minute": minute, "hour": hour, "day_of_month": day, "month_of_year": month, "day_of_week": weekday}


def every_seconds(cron: str) -> float | None:
    """`@every 1h30m` as seconds; None when `cron` is not an `@every`."""
    text = cron.strip()
    if not text.startswith("@every"):
        return None
    duration = text.removeprefix("@every").strip()
    total, pos = 0.0, 0
    for match in re.finditer(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", duration):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(duration) or not duration:
        raise ValueError(f"cron {cron!r}: `@every` takes a duration such as 30m or 1h30m")
    return total


def sync_cron(definition: PipelineDefinition, pipeline: PipelineYml) -> None:
    """Create, update or remove the definition's periodic task to match its `cron`.

    ValidationError (a 400 naming `cron`) for a schedule beat cannot run: an `@every` shorter than
    MIN_INTERVAL, or a Quartz year other than `*`."""
    from django.core.exceptions import ValidationError
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    if not pipeline.cron:
        remove_cron(definition)
        return
    try:
        seconds = every_seconds(pipeline.cron)
        if seconds is not None and seconds < MIN_INTERVAL:
            raise ValueError(f"cron {pipeline.cron!r}: runs at most once every {MIN_INTERVAL} seconds")
        fields = crontab_fields(pipeline.cron) if seconds is None else None
    except ValueError as exc:
        raise ValidationError({"cron": str(exc)}) from None
    if seconds is not None:
        interval, _ = IntervalSchedule.objects.get_or_create(every=int(seconds), period=IntervalSchedule.SECONDS)
        defaults = {"interval": interval, "crontab": None}
    else:
        defaults = {"crontab": CrontabSchedule.objects.get_or_create(**fields, timezone="UTC")[0], "interval": None}
    PeriodicTask.objects.update_or_create(
        name=cron_task_name(definition),
        defaults={"task": "dice.pipelines.cron_run", **defaults,
                  "args": json.dumps([definition.pk]), "enabled": True},
    )


def remove_cron(definition: PipelineDefinition) -> None:
    from django_celery_beat.models import PeriodicTask

    PeriodicTask.objects.filter(name=cron_task_name(definition)).delete()


def workspace_for_branch(project_id: int, branch: str | None) -> str | None:
    rules = list(BranchRule.objects.filter(project_id=project_id).order_by("priority", "id"))
    if not rules:
        return "DEV"
    for rule in rules:
        if branch is not None and glob_match(rule.pattern, branch):
            return rule.workspace
    return None


def run_from_cron(definition_id: int) -> PipelineRun | None:
    from apps.pipelines import services

    definition = PipelineDefinition.objects.select_related("application").filter(pk=definition_id).first()
    if definition is None:
        return None
    workspace = workspace_for_branch(definition.application.project_id, definition.branch or None) or "DEV"
    return services.start_run(
        definition.created_by, definition.application, definition=definition, workspace=workspace,
        trigger=TriggerKind.CRON, trigger_payload={"event": "cron", "definition": definition.pk},
        check_perms=False,
    )


# ---- webhooks --------------------------------------------------------------------------------


def webhook_secret(project_id: int) -> str | None:
    config = ProjectConfig.objects.filter(project_id=project_id, key=WEBHOOK_SECRET_KEY).first()
    return config.plain_value() if config else None


def remember_delivery(application, provider: str, delivery: str) -> WebhookDelivery | None:
    """Record a delivery id; None when the same id came within DELIVERY_MEMORY (a replay).

    Old ids are forgotten as new ones arrive, so the table holds about a day of deliveries."""
    now = timezone.now()
    WebhookDelivery.objects.filter(received__lt=now - DELIVERY_MEMORY).delete()
    try:
        with transaction.atomic():
            return WebhookDelivery.objects.create(application=application, provider=provider,
                                                  delivery_id=delivery, received=now)
    except IntegrityError:
        return None


def matches_push(pipeline: PipelineYml, push: GitEvent) -> bool:
    on = pipeline.on.push if pipeline.on else None
    if on is None:
        return False
    if push.branch:
        return matches_any(on.branches, push.branch)
    if push.tag:
        return matches_any(on.tags, push.tag)
    return False


def matches_merge(pipeline: PipelineYml, merge: GitEvent) -> bool:
    on = pipeline.on.merge if pipeline.on else None
    return on is not None and matches_any(on.branches, merge.target_branch)


def _definitions(application, notes: list[str]):
    from apps.pipelines import steps

    for definition in PipelineDefinition.objects.filter(application=application).select_related("created_by"):
        try:
            pipeline = steps.pipeline_of(PipelineRun(source=definition.source, name=definition.name))
        except Exception:
            notes.append(f"{definition.name}: invalid pipeline.yml")
            continue
        yield definition, pipeline


def runs_for_push(application, push: GitEvent) -> tuple[list[PipelineRun], list[str]]:
    """Start a run of every definition of the application whose `on.push` matches."""
    from apps.pipelines import services

    started, notes = [], []
    for definition, pipeline in _definitions(application, notes):
        if not matches_push(pipeline, push):
            notes.append(f"{definition.name}: on.push does not match {push.branch or push.tag}")
            continue
        workspace = workspace_for_branch(application.project_id, push.branch or None)
        if workspace is None:
            notes.append(f"{definition.name}: no branch rule matches {push.branch}")
            continue
        started.append(services.start_run(
            definition.created_by, application, definition=definition, workspace=workspace,
            trigger=TriggerKind.PUSH, trigger_payload=push.payload(), check_perms=False))
    return started, notes


def runs_for_merge(application, merge: GitEvent) -> tuple[list[PipelineRun], list[str]]:
    """Start a run (in DEV) of every definition whose `on.merge.branches` lists the target branch."""
    from apps.pipelines import services

    started, notes = [], []
    for definition, pipeline in _definitions(application, notes):
        if not matches_merge(pipeline, merge):
            notes.append(f"{definition.name}: on.merge does not match {merge.target_branch}")
            continue
        started.append(services.start_run(
            definition.created_by, application, definition=definition, workspace="DEV",
            trigger=TriggerKind.MERGE, trigger_payload=merge.payload(), check_perms=False))
    return started, notes


def branch_runtime_name(branch: str) -> str:
    """The runtime a branch's pipeline deploys to (the `dice` action's default name)."""
    return branch.lower().replace("/", "-")


# Workspaces whose runtimes a branch deletion may remove; STAGING and PROD are left to people.
TEARDOWN_WORKSPACES = ("DEV", "TEST")


def teardown_for_deletion(application, deletion: GitEvent) -> list[str]:
    """A deleted branch starts nothing; the runtime its pipelines deployed (named after it, in the
    workspace its branch rule gives) is removed when that is DEV or TEST. Returns what was done."""
    from apps.deploy import deployments
    from apps.deploy.models import Runtime

    if not deletion.branch:
        return [f"tag {deletion.tag} deleted: nothing to run"]
    name = branch_runtime_name(deletion.branch)
    notes = [f"branch {deletion.branch} deleted: no run started"]
    workspace = workspace_for_branch(application.project_id, deletion.branch)
    runtime = None
    if workspace is not None and name != "main":
        runtime = (Runtime.objects.filter(application=application, workspace__kind=workspace, name=name)
                   .select_related("workspace", "application__project__organization").first())
    if runtime is None:
        notes.append(f"no runtime {name!r} of this branch runs: nothing to remove")
        return notes
    if workspace not in TEARDOWN_WORKSPACES:
        notes.append(f"runtime {name} in {workspace} left running: a branch deletion removes only "
                     f"{' and '.join(TEARDOWN_WORKSPACES)} runtimes")
        return notes
    actor = _runtime_actor(runtime)
    try:
        deployments.delete_runtime(actor, runtime)
    except Exception as exc:  # a refused permission or an unreachable cluster: say so, start nothing
        log.warning("webhook: could not remove runtime %s: %s", runtime.pk, exc)
        notes.append(f"runtime {name} in {workspace} could not be removed: {exc}")
        return notes
    notes.append(f"runtime {name} in {workspace} removed")
    return notes


def _runtime_actor(runtime):
    """Who removes it: whoever made its latest deployment (they deployed it, so they may remove it)."""
    latest = runtime.deployments.exclude(created_by=None).select_related("created_by").first()
    return latest.created_by if latest else None
