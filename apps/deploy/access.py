"""Who may change a runtime: deploying to a workspace needs `deploy:<WS>` on the application."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from apps.projects import permissions as perms
from apps.projects import scope
from apps.projects.models import Application


def require_deploy(user, application: Application, workspace_kind: str) -> None:
    if not scope.has_perm(user, perms.deploy_perm(workspace_kind), application):
        raise PermissionDenied(f"you may not deploy to {workspace_kind} of application {application}")
