"""Pipeline definitions in the browser: the editor (live validation as you type, the task graph
previewed like a run's), save, and delete after a confirmation."""

from __future__ import annotations

from types import SimpleNamespace

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django.views import View

from apps.pipelines import services
from apps.pipelines.dag import run_svg
from apps.pipelines.models import PipelineDefinition
from apps.pipelines.views import AppMixin
from apps.projects import permissions, scope
from dice_console.views import get_scoped_or_404, require
from pipelineyml import parse_pipeline_yml, plan
from speckit import SpecInvalid, sort_errors

MAX_SOURCE = 1024 * 1024


def check_source(source: str) -> dict:
    """What the editor shows under the text: the errors (line, path, message), or the tasks and
    their graph, drawn as a run's would be."""
    if not source.strip():
        return {"checked": False}
    if len(source.encode()) > MAX_SOURCE:
        return {"checked": True, "valid": False, "errors": [{"line": None, "path": "", "message": "over 1 MiB"}]}
    try:
        pipeline = parse_pipeline_yml(source.encode(), source="pipeline.yml")
    except SpecInvalid as exc:
        return {"checked": True, "valid": False, "errors": [
            {"line": e.line, "path": e.path, "message": e.message} for e in sort_errors(exc.errors)]}
    tasks = [SimpleNamespace(alias=t.alias, type=t.type, needs=list(t.needs), status="queued", attempt=1,
                             get_log_url=lambda: "", last_line=0) for t in plan(pipeline)]
    return {"checked": True, "valid": True, "tasks": len(tasks), "name": pipeline.name,
            "cron": pipeline.cron or "", "svg": mark_safe(run_svg(tasks))}


class DefinitionMixin(AppMixin):
    def get_definition(self) -> PipelineDefinition:
        return get_scoped_or_404(scope.scoped(self.request.user, PipelineDefinition).filter(application=self.get_app()),
                                 pk=self.kwargs["pk"])


class DefinitionEditView(DefinitionMixin, View):
    """GET: the editor of a definition (pk) or of a new one (no pk); POST: save it."""

    def page(self, definition, source: str, status: int = 200, **extra):
        app = self.get_app()
        return render(self.request, "pipelines/definition.html", {
            "app": app, "definition": definition, "source": source, "check": check_source(source),
            "can_change": scope.has_perm(self.request.user, permissions.CHANGE, app), **extra,
        }, status=status)

    def get(self, request, **kwargs):
        definition = self.get_definition() if "pk" in self.kwargs else None
        return self.page(definition, definition.source if definition else "")

    def post(self, request, **kwargs):
        app = self.get_app()
        require(request.user, permissions.CHANGE, app)
        definition = self.get_definition() if "pk" in self.kwargs else None
        source = request.POST.get("source", "")
        name = definition.name if definition else request.POST.get("name", "")
        try:
            saved = services.save_definition(request.user, app, source=source, name=name,
                                             path=request.POST.get("path") or "pipeline.yml",
                                             branch=request.POST.get("branch", ""))
        except ValidationError as exc:
            return self.page(definition, source, 422, errors=exc.messages)
        messages.success(request, f"Saved pipeline {saved.name}.")
        return redirect("pipelines:definition", app.project.organization.slug, app.project.slug, app.slug, saved.pk)


class DefinitionValidateView(AppMixin, View):
    """The live check under the editor (htmx posts the text as you type)."""

    def post(self, request, **kwargs):
        self.get_app()
        return render(request, "pipelines/_definition_check.html", {"check": check_source(request.POST.get("source", ""))})


class DefinitionDeleteView(DefinitionMixin, View):
    def post(self, request, **kwargs):
        definition = self.get_definition()
        app = self.get_app()
        services.delete_definition(request.user, definition)
        messages.success(request, f"Deleted pipeline {definition.name}.")
        return redirect("pipelines:list", app.project.organization.slug, app.project.slug, app.slug)
