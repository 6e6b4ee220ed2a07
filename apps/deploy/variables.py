"""The console's environment variables per application and workspace: the one place that sets,
removes and reads them (pages, API, CLI), and what a rollout hands the executor.

Precedence, in every service, sidecar and job of the application's runtimes in the workspace
(README, "Environment variables"): these variables win over dice.yml `envs` (with `((KEY))`
filled from project configs), which win over addon and then discovery variables; the platform's
DICE_*/SELF_*/PORT* names are refused here, so a variable never shadows them. A change is taken on the next deploy; until then
the runtime reads "out of sync" (drift)."""

from __future__ import annotations

import json

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.crypto import salted_hmac

from apps.clusters import crypto
from apps.deploy.models import EnvironmentVariable, Runtime
from apps.projects import audit, scope
from apps.projects import permissions as perms
from apps.projects.choices import WorkspaceKind
from apps.projects.models import Application, Workspace
from scheduler.envvars import variable_name_problem

MASK = "******"
MAX_VALUE = 65536  # characters of one value
MAX_PER_WORKSPACE = 500  # variables of one application in one workspace


def require_change(user, application: Application, workspace_kind: str) -> None:
    """Setting a variable changes what runs in the workspace on its next deploy: it takes the
    right to change the application and to deploy to that workspace."""
    if not scope.has_perm(user, perms.CHANGE, application):
        raise PermissionDenied(f"you may not change application {application}")
    if not scope.has_perm(user, perms.deploy_perm(workspace_kind), application):
        raise PermissionDenied(f"you may not change the variables of {workspace_kind}: you may not deploy there")


def _workspace(application: Application, workspace: Workspace | str) -> Workspace:
    if isinstance(workspace, Workspace):
        if workspace.project_id != application.project_id:
            raise ValidationError({"workspace": "the workspace belongs to another project"})
        return workspace
    kind = str(workspace or "").upper()
    if kind not in WorkspaceKind.values:
        raise ValidationError({"workspace": f"unknown workspace {workspace!r}; use {', '.join(WorkspaceKind.values)}"})
    return application.project.workspaces.get(kind=kind)


def check_name(name: str) -> str:
    name = (name or "").strip()
    if (problem := variable_name_problem(name)) is not None:
        raise ValidationError({"name": problem})
    return name


def check_value(value: str) -> str:
    if not isinstance(value, str):
        raise ValidationError({"value": "a value is text"})
    if "\x00" in value:
        raise ValidationError({"value": "a value cannot hold a NUL byte (no process environment can)"})
    if len(value) > MAX_VALUE:
        raise ValidationError({"value": f"a value has at most {MAX_VALUE} characters"})
    return value


@transaction.atomic
def set_variable(user, application: Application, workspace: Workspace | str, *, name: str, value: str,
                 secret: bool = False) -> EnvironmentVariable:
    """Create or replace a variable (a secret's value is stored encrypted)."""
    ws = _workspace(application, workspace)
    require_change(user, application, ws.kind)
    name, value = check_name(name), check_value(value)
    existing = EnvironmentVariable.objects.filter(application=application, workspace=ws, name=name).first()
    if existing is None and EnvironmentVariable.objects.filter(application=application, workspace=ws).count() \
            >= MAX_PER_WORKSPACE:
        raise ValidationError({"name": f"an application has at most {MAX_PER_WORKSPACE} variables per workspace"})
    variable = existing or EnvironmentVariable(application=application, workspace=ws, name=name)
    variable.value = crypto.encrypt(value) if secret else value
    variable.secret = bool(secret)
    variable.save()
    audit.record(user, "update" if existing else "create", variable, after={
        "id": variable.pk, "workspace": ws.kind, "name": name, "secret": variable.secret,
        "value": MASK if variable.secret else value,
    })
    return variable


@transaction.atomic
def unset_variable(user, variable: EnvironmentVariable) -> None:
    require_change(user, variable.application, variable.workspace.kind)
    audit.record(user, "delete", variable, before={
        "id": variable.pk, "workspace": variable.workspace.kind, "name": variable.name, "secret": variable.secret,
    })
    variable.delete()


def variables_of(user, application: Application, workspace: Workspace):
    """The variables the user may see of the application in the workspace, by name."""
    return (scope.scoped(user, EnvironmentVariable)
            .filter(application=application, workspace=workspace)
            .select_related("workspace").order_by("name"))


def for_runtime(runtime: Runtime) -> tuple[dict[str, str], dict[str, str], str]:
    """(plain, secret, digest) of the runtime's application in its workspace, for the executor.
    The digest is keyed with the console's secret key: it changes with any name or value and
    tells nothing of a secret's value to whoever reads the workloads."""
    plain: dict[str, str] = {}
    secret: dict[str, str] = {}
    for v in EnvironmentVariable.objects.filter(application_id=runtime.application_id,
                                                workspace_id=runtime.workspace_id).order_by("name"):
        if v.secret:
            secret[v.name] = v.plain_value()
        else:
            plain[v.name] = v.value
    if not plain and not secret:
        return plain, secret, ""
    body = json.dumps([sorted(plain.items()), sorted(secret.items())])
    digest = salted_hmac("dice.deploy.variables", body, algorithm="sha256").hexdigest()[:16]
    return plain, secret, digest
