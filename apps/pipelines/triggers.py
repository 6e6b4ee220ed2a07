"""Triggers other than a person: cron (one django-celery-beat PeriodicTask per definition) and git
push webhooks (GitHub, GitLab, Gitea), matched against `on.push` and the project's branch rules.

Webhook secret: the project config `webhook_secret` (make it secret). A push is matched like this:
the definition's `on.push.branches` (or `tags`) fnmatch the pushed branch (tag); then the
project's branch rules, lowest priority first, give the workspace. A project without any branch
rule runs pushes in DEV; a project with rules runs nothing for a branch no rule matches.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json

from apps.pipelines.choices import TriggerKind
from apps.pipelines.models import BranchRule, PipelineDefinition, PipelineRun, ProjectConfig
from pipelineyml import PipelineYml

WEBHOOK_SECRET_KEY = "webhook_secret"
PROVIDERS = ("github", "gitlab", "gitea")


# ---- cron ------------------------------------------------------------------------------------


def cron_task_name(definition: PipelineDefinition) -> str:
    return f"pipeline-definition-{definition.pk}"


def crontab_fields(cron: str) -> dict[str, str]:
    """5 fields (minute hour day month weekday), or 6 with seconds first (dropped); `?` is `*`."""
    if cron.startswith("@"):
        presets = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
                   "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
        cron = presets.get(cron, cron)
    parts = [p.replace("?", "*") for p in cron.split()]
    if len(parts) == 6:
        parts = parts[1:]
    minute, hour, day, month, weekday = parts
    return {"minute": minute, "hour": hour, "day_of_month": day, "month_of_year": month, "day_of_week": weekday}


def sync_cron(definition: PipelineDefinition, pipeline: PipelineYml) -> None:
    """Create, update or remove the definition's periodic task to match its `cron`."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    if not pipeline.cron:
        remove_cron(definition)
        return
    schedule, _ = CrontabSchedule.objects.get_or_create(**crontab_fields(pipeline.cron), timezone="UTC")
    PeriodicTask.objects.update_or_create(
        name=cron_task_name(definition),
        defaults={"task": "dice.pipelines.cron_run", "crontab": schedule, "interval": None,
                  "args": json.dumps([definition.pk]), "enabled": True},
    )


def remove_cron(definition: PipelineDefinition) -> None:
    from django_celery_beat.models import PeriodicTask

    PeriodicTask.objects.filter(name=cron_task_name(definition)).delete()


def rule_for_branch(project_id: int, branch: str | None) -> tuple[str | None, BranchRule | None]:
    """(workspace, the rule that chose it): DEV and no rule for a project without rules; (None, None)
    when the project has rules and none matches."""
    rules = list(BranchRule.objects.filter(project_id=project_id).select_related("created_by")
                 .order_by("priority", "id"))
    if not rules:
        return "DEV", None
    for rule in rules:
        if branch is not None and fnmatch.fnmatchcase(branch, rule.pattern):
            return rule.workspace, rule
    return None, None


def workspace_for_branch(project_id: int, branch: str | None) -> str | None:
    return rule_for_branch(project_id, branch)[0]


# Automatic runs into these workspaces are checked against the people behind them when they run.
GUARDED_WORKSPACES = frozenset({"STAGING", "PROD"})


def automatic_run_refusal(definition: PipelineDefinition, workspace: str, rule: BranchRule | None) -> str | None:
    """Why an automatic (webhook or cron) run of `definition` may not go to `workspace` now, or None.

    Into STAGING and PROD the definition's author and the creator of the branch rule that chose
    the workspace must both hold the right to deploy there at the time the run starts: a rule or a
    secret set up by someone who may not deploy there never borrows the author's rights."""
    from apps.projects import scope
    from apps.projects.permissions import deploy_perm

    if workspace not in GUARDED_WORKSPACES:
        return None
    application = definition.application
    checks = [("the definition's author", definition.created_by)]
    if rule is not None:
        checks.append((f"the creator of branch rule {rule.pattern!r}", rule.created_by))
    for who, user in checks:
        if user is None or not user.is_active:
            return f"{who} is unknown or inactive: someone allowed to deploy to {workspace} must save it again"
        if not scope.has_perm(user, deploy_perm(workspace), application):
            return f"{who} ({user.username}) may not deploy to {workspace}"
    return None


def _refused(definition: PipelineDefinition, workspace: str, trigger: str, reason: str) -> None:
    from apps.projects import audit

    audit.record(None, "run_refused", definition,
                 after={"definition": definition.pk, "workspace": workspace, "trigger": trigger, "reason": reason})


def run_from_cron(definition_id: int) -> PipelineRun | None:
    from apps.pipelines import services

    definition = PipelineDefinition.objects.select_related("application").filter(pk=definition_id).first()
    if definition is None:
        return None
    workspace, rule = rule_for_branch(definition.application.project_id, definition.branch or None)
    workspace = workspace or "DEV"
    refusal = automatic_run_refusal(definition, workspace, rule)
    if refusal:
        _refused(definition, workspace, "cron", refusal)
        return None
    return services.start_run(
        definition.created_by, definition.application, definition=definition, workspace=workspace,
        trigger=TriggerKind.CRON, trigger_payload={"event": "cron", "definition": definition.pk},
        check_perms=False,
    )


# ---- webhooks --------------------------------------------------------------------------------


class BadSignature(Exception):
    """The request is not signed with the project's webhook secret."""


def webhook_secret(project_id: int) -> str | None:
    config = ProjectConfig.objects.filter(project_id=project_id, key=WEBHOOK_SECRET_KEY).first()
    return config.plain_value() if config else None


def verify(provider: str, secret: str | None, headers, body: bytes) -> None:
    if not secret:
        raise BadSignature("the project has no webhook_secret config")
    if provider == "github":
        given = headers.get("X-Hub-Signature-256", "")
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    elif provider == "gitea":
        given = headers.get("X-Gitea-Signature", "")
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    elif provider == "gitlab":
        given, expected = headers.get("X-Gitlab-Token", ""), secret
    else:
        raise BadSignature(f"unknown provider {provider!r}")
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise BadSignature("signature mismatch")


def push_event(provider: str, headers, payload: dict) -> dict | None:
    """The push as trigger values (event, provider, branch or tag, commit, repo, author, message);
    None for other events."""
    event = (headers.get("X-GitHub-Event") or headers.get("X-Gitea-Event") or headers.get("X-Gitlab-Event") or "")
    if event.lower() not in ("push", "push hook", "tag push hook"):
        return None
    ref = str(payload.get("ref") or "")
    branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None
    tag = ref.removeprefix("refs/tags/") if ref.startswith("refs/tags/") else None
    repo = payload.get("repository") or payload.get("project") or {}
    head = payload.get("head_commit") or (payload.get("commits") or [{}])[-1] or {}
    author = (head.get("author") or {}).get("name") or payload.get("user_name") or (payload.get("pusher") or {}).get("name", "")
    return {
        "event": "push", "provider": provider, "ref": ref, "branch": branch or "", "tag": tag or "",
        "commit": payload.get("after") or payload.get("checkout_sha") or "",
        "repo": repo.get("clone_url") or repo.get("git_http_url") or repo.get("http_url") or "",
        "author": author, "message": head.get("message", ""),
    }


def matches_push(pipeline: PipelineYml, push: dict) -> bool:
    on = pipeline.on.push if pipeline.on else None
    if on is None:
        return False
    if push["branch"]:
        return any(fnmatch.fnmatchcase(push["branch"], pattern) for pattern in on.branches)
    if push["tag"]:
        return any(fnmatch.fnmatchcase(push["tag"], pattern) for pattern in on.tags)
    return False


def runs_for_push(application, push: dict) -> tuple[list[PipelineRun], list[str]]:
    """Start a run of every definition of the application whose `on.push` matches."""
    from apps.pipelines import services, steps

    started, notes = [], []
    for definition in PipelineDefinition.objects.filter(application=application):
        fake_run = PipelineRun(source=definition.source, name=definition.name)
        try:
            pipeline = steps.pipeline_of(fake_run)
        except Exception:
            notes.append(f"{definition.name}: invalid pipeline.yml")
            continue
        if not matches_push(pipeline, push):
            notes.append(f"{definition.name}: on.push does not match {push['branch'] or push['tag']}")
            continue
        workspace, rule = rule_for_branch(application.project_id, push["branch"] or None)
        if workspace is None:
            notes.append(f"{definition.name}: no branch rule matches {push['branch']}")
            continue
        refusal = automatic_run_refusal(definition, workspace, rule)
        if refusal:
            _refused(definition, workspace, "push", refusal)
            notes.append(f"{definition.name}: refused: {refusal}")
            continue
        started.append(services.start_run(
            definition.created_by, application, definition=definition, workspace=workspace,
            trigger=TriggerKind.PUSH, trigger_payload=push, check_perms=False))
    return started, notes
