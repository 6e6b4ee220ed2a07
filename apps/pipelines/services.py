"""The one place that changes pipeline state: definitions, runs (manual, cron, push, re-run),
cancel, reviews, project configs and branch rules. Views, API, CLI and tasks come through here."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q

from apps.pipelines import branches, engine, queue, schedules, secrets, steplogs
from apps.pipelines.choices import RunStatus, TaskStatus, TriggerKind
from apps.pipelines.models import BranchRule, PipelineDefinition, PipelineRun, ProjectConfig, TaskRun
from apps.projects import audit, scope
from apps.projects import permissions as perms
from apps.projects.choices import WorkspaceKind
from apps.projects.models import Application, Project
from pipelineyml import PipelineYml, parse_pipeline_yml
from pipelineyml.globs import check_glob
from speckit import SpecInvalid

MAX_SOURCE = 1024 * 1024
WORKSPACE_NAMES = {"DEVELOPMENT": "DEV", "PRODUCTION": "PROD", "TESTING": "TEST"}


def _require(user, perm: str, obj) -> None:
    if not scope.has_perm(user, perm, obj):
        raise PermissionDenied(f"you may not {perm.replace('_', ' ').replace(':', ' to ')} in {obj}")


def workspace_kind(value: str | None) -> str:
    kind = str(value or "DEV").strip().upper()
    kind = WORKSPACE_NAMES.get(kind, kind)
    if kind not in WorkspaceKind.values:
        raise ValidationError({"workspace": f"unknown workspace {value!r}; choose one of {', '.join(WorkspaceKind.values)}"})
    return kind


def parse_source(source: str, name: str = "pipeline.yml") -> PipelineYml:
    if len(source.encode("utf-8")) > MAX_SOURCE:
        raise ValidationError({"source": f"the pipeline.yml is larger than {MAX_SOURCE} bytes"})
    try:
        return parse_pipeline_yml(source, source=name)
    except SpecInvalid as exc:
        raise ValidationError({"source": [str(e) for e in exc.errors]}) from None


def resolve_params(pipeline: PipelineYml, given: dict | None) -> dict:
    """Run params: the given values, defaults for the rest; required ones must be there."""
    given = dict(given or {})
    declared = {p.name: p for p in pipeline.params}
    unknown = sorted(set(given) - set(declared))
    errors = [f"unknown param '{k}' (declared: {', '.join(sorted(declared)) or 'none'})" for k in unknown]
    out = {}
    for name, param in declared.items():
        if name in given and given[name] not in (None, ""):
            out[name] = given[name]
        elif param.default is not None:
            out[name] = param.default
        elif param.required:
            errors.append(f"param '{name}' is required")
    if errors:
        raise ValidationError({"params": errors})
    return out


# ---- definitions ------------------------------------------------------------------------------


@transaction.atomic
def save_definition(user, application: Application, *, source: str, name: str = "", path: str = "pipeline.yml",
                    branch: str = "") -> PipelineDefinition:
    """Create or replace the application's definition called `name` (default: the file's name)."""
    _require(user, perms.CHANGE, application)
    pipeline = parse_source(source, path)
    if pipeline.cron:
        # A schedule runs as its author without anyone present: only someone who may deploy to the
        # workspace it runs in sets one.
        target = branches.workspace_for_branch(application.project_id, branch or None) or "DEV"
        _require(user, perms.deploy_perm(target), application)
    name = (name or pipeline.name or path.rsplit("/", 1)[-1].removesuffix(".yml")).strip()[:100]
    definition, created = PipelineDefinition.objects.update_or_create(
        application=application, name=name,
        defaults={"source": source, "path": path or "pipeline.yml", "branch": branch,
                  **({"created_by": user} if user is not None and user.is_authenticated else {})},
    )
    schedules.sync_cron(definition, pipeline)
    audit.record(user, "create" if created else "update", definition,
                 after={"id": definition.pk, "name": name, "path": definition.path, "branch": branch})
    return definition


@transaction.atomic
def delete_definition(user, definition: PipelineDefinition) -> None:
    _require(user, perms.CHANGE, definition.application)
    schedules.remove_cron(definition)
    audit.record(user, "delete", definition, before={"id": definition.pk, "name": definition.name})
    definition.delete()


# ---- runs -------------------------------------------------------------------------------------


def start_run(user, application: Application, *, source: str | None = None,
              definition: PipelineDefinition | None = None, workspace: str = "DEV", params: dict | None = None,
              trigger: str = TriggerKind.MANUAL, trigger_payload: dict | None = None, name: str = "",
              rerun_of: PipelineRun | None = None, check_perms: bool = True) -> PipelineRun:
    """Create a run (queued) with its tasks, then start it if the project has a free slot."""
    workspace = workspace_kind(workspace)
    if check_perms:
        _require(user, perms.CHANGE, application)
        _require(user, perms.deploy_perm(workspace), application)
    if definition is not None:
        if definition.application_id != application.pk:
            raise ValidationError({"definition": "the definition belongs to another application"})
        source, name = definition.source, name or definition.name
    if not source:
        raise ValidationError({"source": "give a pipeline.yml (source) or a definition"})
    pipeline = parse_source(source, name or "pipeline.yml")
    with transaction.atomic():
        run = PipelineRun.objects.create(
            application=application, definition=definition, name=(name or pipeline.name or "pipeline")[:100],
            source=source, workspace=workspace, params=resolve_params(pipeline, params), trigger=trigger,
            trigger_payload=trigger_payload or {}, rerun_of=rerun_of,
            created_by=user if user is not None and user.is_authenticated else None,
            created_by_name=getattr(user, "username", "") or trigger,
        )
        engine.create_tasks(run, pipeline)
        audit.record(user, "run", run, after={"id": run.pk, "workspace": workspace, "trigger": trigger,
                                              "definition": definition.pk if definition else None})
    project_id = application.project_id
    transaction.on_commit(lambda: _start_soon(project_id))
    return run


def _start_soon(project_id: int) -> None:
    queue.send("start_runs", project_id)


def cancel_run(user, run: PipelineRun) -> PipelineRun:
    _require(user, perms.CHANGE, run.application)
    if run.status not in (RunStatus.QUEUED, RunStatus.RUNNING):
        raise ValidationError({"status": f"run {run.pk} is {run.status}: only a queued or running run can be cancelled"})
    engine.cancel_run(run, f"cancelled by {getattr(user, 'username', '') or 'system'}")
    audit.record(user, "cancel", run, after={"id": run.pk, "status": run.status})
    run.refresh_from_db()
    return run


def rerun(user, run: PipelineRun) -> PipelineRun:
    return start_run(user, run.application, source=run.source, definition=None, workspace=run.workspace,
                     params=run.params, trigger=TriggerKind.RERUN, trigger_payload=run.trigger_payload,
                     name=run.name, rerun_of=run)


def review_task(user, task: TaskRun, *, approve: bool, comment: str = "") -> TaskRun:
    """Approve or reject a waiting manual-review, or a deploy into a protected workspace."""
    run = task.run
    _require(user, perms.deploy_perm(run.workspace), run.application)
    if task.type == "dice":
        return _review_protected_deploy(user, task, approve=approve, comment=comment)
    if task.type != "manual-review":
        raise ValidationError({"task": f"task '{task.alias}' is a {task.type}, not a manual-review"})
    if task.status != TaskStatus.RUNNING or task.started is None:
        raise ValidationError({"task": f"task '{task.alias}' is {task.status}: it is not waiting for a review"})
    engine.review(task, approve, getattr(user, "username", "") or "system", comment)
    audit.record(user, "approve" if approve else "reject", run, after={"task": task.alias})
    task.refresh_from_db()
    return task


def _review_protected_deploy(user, task: TaskRun, *, approve: bool, comment: str) -> TaskRun:
    run = task.run
    waiting_for = (task.outputs or {}).get("awaiting_review")
    if task.status != TaskStatus.RUNNING or not waiting_for or task.review:
        raise ValidationError({"task": f"task '{task.alias}' is not a deploy waiting for a review"})
    # The reviewer must be allowed to deploy where the step deploys (it may name another workspace).
    _require(user, perms.deploy_perm(waiting_for), run.application)
    reviewer = getattr(user, "username", "") or "system"
    if not approve:
        engine.review(task, False, reviewer, comment)
    else:
        TaskRun.objects.filter(pk=task.pk).update(review="approved", reviewed_by=reviewer)
        steplogs.append_lines(task, [f"approved by {reviewer}" + (f": {comment}" if comment else "")])
        transaction.on_commit(lambda: _resume(task.pk))
    audit.record(user, "approve" if approve else "reject", run, after={"task": task.alias, "workspace": waiting_for})
    task.refresh_from_db()
    return task


def _resume(task_id: int) -> None:
    queue.send("resume_after_review", task_id)


def find_review_task(run: PipelineRun, alias: str | None) -> TaskRun:
    waiting = run.tasks.filter(Q(type="manual-review") | Q(type="dice", review="", outputs__has_key="awaiting_review"),
                               status=TaskStatus.RUNNING)
    if alias:
        waiting = waiting.filter(alias=alias)
    task = waiting.first()
    if task is None:
        raise ValidationError({"task": "no manual-review task of this run is waiting" + (f" as '{alias}'" if alias else "")})
    return task


# ---- project configs and branch rules --------------------------------------------------------


def _require_webhook_rights(user, project: Project) -> None:
    """The webhook secret lets anyone holding it start runs in every workspace the branch rules
    reach: setting or removing it needs the right to deploy to all of them."""
    targets = set(BranchRule.objects.filter(project=project).values_list("workspace", flat=True)) or {"DEV"}
    for workspace in sorted(targets):
        _require(user, perms.deploy_perm(workspace), project)


@transaction.atomic
def set_config(user, project: Project, *, key: str, value: str, secret: bool = False) -> ProjectConfig:
    _require(user, perms.CHANGE, project)
    key = key.strip()
    if key == branches.WEBHOOK_SECRET_KEY:
        _require_webhook_rights(user, project)
    if not key or any(c.isspace() for c in key):
        raise ValidationError({"key": "a config key is a non-empty word (letters, digits, . _ -)"})
    stored = secrets.encrypt(value) if secret else value
    config, created = ProjectConfig.objects.update_or_create(
        project=project, key=key, defaults={"value": stored, "secret": secret})
    audit.record(user, "create" if created else "update", config,
                 after={"id": config.pk, "key": key, "secret": secret, "value": secrets.MASK if secret else value})
    return config


@transaction.atomic
def delete_config(user, config: ProjectConfig) -> None:
    _require(user, perms.CHANGE, config.project)
    if config.key == branches.WEBHOOK_SECRET_KEY:
        _require_webhook_rights(user, config.project)
    audit.record(user, "delete", config, before={"id": config.pk, "key": config.key})
    config.delete()


@transaction.atomic
def save_branch_rule(user, project: Project, *, pattern: str, workspace: str, priority: int = 100,
                     rule: BranchRule | None = None) -> BranchRule:
    _require(user, perms.CHANGE, project)
    pattern = pattern.strip()
    if not pattern:
        raise ValidationError({"pattern": "give a branch pattern (glob), e.g. main, feature/* or release/**"})
    if (problem := check_glob(pattern)) is not None:
        raise ValidationError({"pattern": problem})
    # A rule sends pushes to a workspace: it takes the right to deploy there (and, when it is
    # changed, to the workspace it sent them to until now).
    workspace = workspace_kind(workspace)
    _require(user, perms.deploy_perm(workspace), project)
    if rule is not None and rule.pk:
        _require(user, perms.deploy_perm(rule.workspace), project)
    rule = rule or BranchRule(project=project)
    rule.pattern, rule.workspace, rule.priority = pattern, workspace, priority
    if user is not None and user.is_authenticated:
        rule.created_by = user
    if BranchRule.objects.filter(project=project, pattern=pattern).exclude(pk=rule.pk).exists():
        raise ValidationError({"pattern": f"a rule for {pattern!r} already exists"})
    created = rule.pk is None
    rule.save()
    audit.record(user, "create" if created else "update", rule,
                 after={"id": rule.pk, "pattern": pattern, "workspace": rule.workspace, "priority": priority})
    return rule


@transaction.atomic
def delete_branch_rule(user, rule: BranchRule) -> None:
    _require(user, perms.CHANGE, rule.project)
    _require(user, perms.deploy_perm(rule.workspace), rule.project)
    audit.record(user, "delete", rule, before={"id": rule.pk, "pattern": rule.pattern})
    rule.delete()
