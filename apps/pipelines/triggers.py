"""Triggers other than a person: cron runs (their schedules are apps.pipelines.schedules) and git
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

from apps.pipelines import reference, services
from apps.pipelines.choices import TriggerKind
from apps.pipelines.models import BranchRule, PipelineDefinition, PipelineRun, ProjectConfig
from pipelineyml import PipelineYml

WEBHOOK_SECRET_KEY = "webhook_secret"
PROVIDERS = ("github", "gitlab", "gitea")


def workspace_for_branch(project_id: int, branch: str | None) -> str | None:
    rules = list(BranchRule.objects.filter(project_id=project_id).order_by("priority", "id"))
    if not rules:
        return "DEV"
    for rule in rules:
        if branch is not None and fnmatch.fnmatchcase(branch, rule.pattern):
            return rule.workspace
    return None


def run_from_cron(definition_id: int) -> PipelineRun | None:
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
    started, notes = [], []
    for definition in PipelineDefinition.objects.filter(application=application):
        fake_run = PipelineRun(source=definition.source, name=definition.name)
        try:
            pipeline = reference.pipeline_of(fake_run)
        except Exception:
            notes.append(f"{definition.name}: invalid pipeline.yml")
            continue
        if not matches_push(pipeline, push):
            notes.append(f"{definition.name}: on.push does not match {push['branch'] or push['tag']}")
            continue
        workspace = workspace_for_branch(application.project_id, push["branch"] or None)
        if workspace is None:
            notes.append(f"{definition.name}: no branch rule matches {push['branch']}")
            continue
        started.append(services.start_run(
            definition.created_by, application, definition=definition, workspace=workspace,
            trigger=TriggerKind.PUSH, trigger_payload=push, check_perms=False))
    return started, notes
