"""Triggers other than a person: cron runs (their schedules: apps.pipelines.schedules) and git
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

import logging
from datetime import timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.deploy import deployments
from apps.deploy.models import Runtime
from apps.monitoring import services as monitoring
from apps.monitoring.choices import NotifyEvent
from apps.pipelines import checkout, previews, reference, repos, services
from apps.pipelines.branches import WEBHOOK_SECRET_KEY, rule_for_branch, workspace_for_branch
from apps.pipelines.choices import TriggerKind
from apps.pipelines.models import BranchRule, PipelineDefinition, PipelineRun, ProjectConfig, WebhookDelivery
from apps.pipelines.webhooks import GitEvent
from pipelineyml import PipelineYml
from pipelineyml.globs import matches_any

DELIVERY_MEMORY = timedelta(days=1)  # a delivery id seen within this is a replay
log = logging.getLogger(__name__)


# Automatic runs into these workspaces are checked against the people behind them when they run.
GUARDED_WORKSPACES = frozenset({"STAGING", "PROD"})


def automatic_run_refusal(definition: PipelineDefinition, workspace: str, rule: BranchRule | None) -> str | None:
    """Why an automatic (webhook or cron) run of `definition` may not go to `workspace` now, or None.

    Into STAGING and PROD the definition's author and the creator of the branch rule that chose
    the workspace must both hold the right to deploy there at the time the run starts: a rule or a
    secret set up by someone who may not deploy there never borrows the author's rights."""
    return _refusal(definition.application, workspace, rule, [("the definition's author", definition.created_by)])


def _refusal(application, workspace: str, rule: BranchRule | None, checks: list) -> str | None:
    from apps.projects import scope
    from apps.projects.permissions import deploy_perm

    if workspace not in GUARDED_WORKSPACES:
        return None
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
    for definition in PipelineDefinition.objects.filter(application=application).select_related("created_by"):
        try:
            pipeline = reference.pipeline_of(PipelineRun(source=definition.source, name=definition.name))
        except Exception:
            notes.append(f"{definition.name}: invalid pipeline.yml")
            continue
        yield definition, pipeline


def runs_for_push(application, push: GitEvent) -> tuple[list[PipelineRun], list[str]]:
    """Start a run of every definition of the application whose `on.push` matches."""
    started, notes = [], []
    for definition, pipeline in _definitions(application, notes):
        if not matches_push(pipeline, push):
            notes.append(f"{definition.name}: on.push does not match {push.branch or push.tag}")
            continue
        workspace, rule = rule_for_branch(application.project_id, push.branch or None)
        if workspace is None:
            notes.append(f"{definition.name}: no branch rule matches {push.branch}")
            continue
        refusal = automatic_run_refusal(definition, workspace, rule)
        if refusal:
            _refused(definition, workspace, "push", refusal)
            notes.append(f"{definition.name}: refused: {refusal}")
            continue
        run = _start_for_event(definition, pipeline, workspace, TriggerKind.PUSH, push, notes)
        if run is not None:
            started.append(run)
    return started, notes


def _start_for_event(definition: PipelineDefinition, pipeline: PipelineYml, workspace: str, trigger: str,
                     event: GitEvent, notes: list[str]) -> PipelineRun | None:
    """Start the definition for a git event, its params named after event fields filled from it.
    A definition that cannot start (a required param nobody gives, an invalid file) is noted for
    itself and recorded in the audit log; the application's other definitions still run."""
    payload = event.payload()
    try:
        with transaction.atomic():
            return services.start_run(
                definition.created_by, definition.application, definition=definition, workspace=workspace,
                trigger=trigger, trigger_payload=payload, params=checkout.params_from_event(pipeline, payload),
                check_perms=False)
    except ValidationError as exc:
        reason = "; ".join(_messages(exc))
        _refused(definition, workspace, trigger, f"cannot start: {reason}")
        notes.append(f"{definition.name}: cannot start: {reason}")
        return None


def _messages(exc: ValidationError) -> list[str]:
    if hasattr(exc, "message_dict"):
        return [f"{field}: {message}" for field, messages in exc.message_dict.items() for message in messages]
    return list(exc.messages)


def runs_for_merge(application, merge: GitEvent) -> tuple[list[PipelineRun], list[str]]:
    """Start a run (in DEV) of every definition whose `on.merge.branches` lists the target branch."""
    started, notes = [], []
    for definition, pipeline in _definitions(application, notes):
        if not matches_merge(pipeline, merge):
            notes.append(f"{definition.name}: on.merge does not match {merge.target_branch}")
            continue
        run = _start_for_event(definition, pipeline, "DEV", TriggerKind.MERGE, merge, notes)
        if run is not None:
            started.append(run)
    return started, notes


def branch_runtime_name(branch: str) -> str:
    """The runtime a branch's pipeline deploys to (the `dice` action's default name)."""
    return branch.lower().replace("/", "-")


# Workspaces whose runtimes a branch deletion may remove; STAGING and PROD are left to people.
TEARDOWN_WORKSPACES = ("DEV", "TEST")


def teardown_for_deletion(application, deletion: GitEvent) -> list[str]:
    """A deleted branch starts nothing; the runtime its pipelines deployed (named after it, in the
    workspace its branch rule gives) is removed when that is DEV or TEST. Returns what was done."""
    if not deletion.branch:
        return [f"tag {deletion.tag} deleted: nothing to run"]
    name = branch_runtime_name(deletion.branch)
    notes = [f"branch {deletion.branch} deleted: no run started", *previews.teardown_for_branch(application, deletion.branch)]
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
    monitoring.notify(application.project, NotifyEvent.PREVIEW_TORN_DOWN,
                      f"Runtime {name} of {application.slug} in {workspace} torn down: branch {deletion.branch} deleted",
                      {"application": application.slug, "workspace": workspace, "runtime_name": name,
                       "branch": deletion.branch})
    return notes


def _runtime_actor(runtime):
    """Who removes it: whoever made its latest deployment (they deployed it, so they may remove it)."""
    latest = runtime.deployments.exclude(created_by=None).select_related("created_by").first()
    return latest.created_by if latest else None


# ---- pushes to hosted repositories -------------------------------------------------------------


def runs_for_hosted_push(application, user, changes: list[tuple[str, str, str]], repo_url: str) -> list[str]:
    """A push to the application's hosted repository, one (ref, old, new) per updated ref, handled
    as a webhook push would be: a deleted branch tears its runtime down; an updated branch or tag
    runs the pipelines its commit declares (pipeline.yml and .dice/pipelines/*.yml at that commit;
    the saved definitions when it declares none) matched by `on.push` and the branch rules, as the
    pusher, who must be allowed to deploy where the rule sends it. Returns what was done."""
    notes: list[str] = []
    for ref, _old, new in changes:
        branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else ""
        tag = ref.removeprefix("refs/tags/") if ref.startswith("refs/tags/") else ""
        if not branch and not tag:
            continue
        event = GitEvent(kind="delete" if new == repos.ZERO else "push", provider="hosted", ref=ref, branch=branch,
                         tag=tag, commit="" if new == repos.ZERO else new, repo=repo_url,
                         author=getattr(user, "username", ""), extra={"hosted": True})
        try:
            if event.kind == "delete":
                notes += teardown_for_deletion(application, event)
            else:
                notes += _hosted_runs(application, user, event)
        except Exception as exc:  # the push itself is stored: say what could not start, never fail it
            log.exception("hosted push to %s: %s", application, ref)
            notes.append(f"{ref}: {exc}")
    for note in notes:
        log.info("hosted push to %s: %s", application, note)
    return notes


def _hosted_runs(application, user, event: GitEvent) -> list[str]:
    try:
        files = repos.pipeline_files(application.pk, event.commit)
    except repos.RepoError as exc:
        return [f"{event.ref}: {exc}"]
    if not files:
        return runs_for_push(application, event)[1]
    notes = []
    for path, text in files:
        try:
            pipeline = services.parse_source(text, path)
        except ValidationError as exc:
            notes.append(f"{path}: invalid: {'; '.join(_messages(exc))}")
            continue
        if not matches_push(pipeline, event):
            notes.append(f"{path}: on.push does not match {event.branch or event.tag}")
            continue
        workspace, rule = rule_for_branch(application.project_id, event.branch or None)
        if workspace is None:
            notes.append(f"{path}: no branch rule matches {event.branch}")
            continue
        refusal = _refusal(application, workspace, rule, [])
        if refusal:
            notes.append(f"{path}: refused: {refusal}")
            continue
        payload = {**event.payload(), "path": path}
        try:
            with transaction.atomic():
                run = services.start_run(user, application, source=text, name=pipeline.name or path, workspace=workspace,
                                         trigger=TriggerKind.PUSH, trigger_payload=payload,
                                         params=checkout.params_from_event(pipeline, payload))
        except (ValidationError, PermissionDenied) as exc:
            reason = "; ".join(_messages(exc)) if isinstance(exc, ValidationError) else str(exc)
            notes.append(f"{path}: cannot start: {reason}")
            continue
        notes.append(f"{path}: run {run.pk} started in {workspace}: {run.get_absolute_url()}")
    return notes


def teardown_for_merge_end(application, event: GitEvent) -> list[str]:
    """A merge request closed or merged starts nothing; its preview environment is removed."""
    return previews.teardown_for_merge_end(application, event.number, event.action)
