"""From a runtime row to the scheduler's RuntimeRef (app x workspace x name, and its namespace)."""

from __future__ import annotations

from apps.deploy.models import Runtime
from scheduler.base import RuntimeRef


def runtime_ref(runtime: Runtime) -> RuntimeRef:
    app = runtime.application
    project = app.project
    return RuntimeRef(
        org=project.organization.slug,
        project=project.slug,
        app=app.slug,
        workspace=runtime.workspace.kind,
        name=runtime.name,
        runtime_id=runtime.pk,
    )
