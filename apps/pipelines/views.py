"""Pipeline pages: an application's definitions and recent runs (with a Run form), one run with
its task graph (refreshed by htmx polling while it runs), its actions, and a task's log."""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django.views import View

from apps.pipelines import services, steps
from apps.pipelines.choices import FINISHED_RUN, FINISHED_TASK
from apps.pipelines.dag import MAX_ROWS_DRAWN, run_svg
from apps.pipelines.filtersets import PipelineRunFilterSet
from apps.pipelines.models import PipelineDefinition, PipelineRun, TaskRun
from apps.pipelines.tables import PipelineRunTable
from apps.pipelines.templatetags.run_tags import rows_of
from apps.projects import permissions, scope
from apps.projects.choices import WorkspaceKind
from dice_console.views import ObjectListView, ScopedMixin, get_scoped_or_404

POLL_MS = 1500  # the run page's refresh while the run is under way and its WebSocket is down
MAX_ROWS_PER_FETCH = 500  # rows one ?rows= fetch of the run page returns


class AppMixin(ScopedMixin):
    model = PipelineRun

    def get_app(self):
        if not hasattr(self, "_app"):
            self._app = get_scoped_or_404(
                scope.applications_for(self.request.user).select_related("project__organization"),
                project__organization__slug=self.kwargs["org"], project__slug=self.kwargs["project"],
                slug=self.kwargs["app"])
        return self._app

    def get_run(self):
        return get_scoped_or_404(
            scope.scoped(self.request.user, PipelineRun).filter(application=self.get_app())
            .select_related("application__project__organization"), pk=self.kwargs["run_id"])


def _params_from_text(text: str) -> dict:
    params = {}
    for line in text.splitlines():
        if line.strip():
            key, sep, value = line.partition("=")
            if not sep:
                raise ValidationError({"params": f"each line is KEY=VALUE, got {line!r}"})
            params[key.strip()] = value.strip()
    return params


def _params_from_post(data) -> dict:
    """The KEY=VALUE lines of the free form, then the one-field-per-param inputs of a definition's row."""
    params = _params_from_text(data.get("params", ""))
    params.update({key.removeprefix("param."): value.strip() for key, value in data.items()
                   if key.startswith("param.") and value.strip()})
    return params


def _declared_params(definition: PipelineDefinition) -> list:
    """The params a definition's Run form asks for (none when its stored source no longer parses)."""
    try:
        return list(services.parse_source(definition.source, definition.path).params)
    except ValidationError:
        return []


class PipelineListView(AppMixin, View):
    def context(self, **extra):
        app = self.get_app()
        definitions = list(scope.scoped(self.request.user, PipelineDefinition).filter(application=app))
        for definition in definitions:
            definition.run_params = _declared_params(definition)
        return {
            "app": app,
            "definitions": definitions,
            "runs": scope.scoped(self.request.user, PipelineRun).filter(application=app).defer("source")
            .select_related("application__project__organization")[:25],  # each row links to its run
            "workspaces": WorkspaceKind.values,
            "can_change": scope.has_perm(self.request.user, permissions.CHANGE, app),
            **extra,
        }

    def get(self, request, *args, **kwargs):
        return render(request, "pipelines/list.html", self.context())

    def post(self, request, *args, **kwargs):
        app = self.get_app()
        data = request.POST
        try:
            definition = None
            if data.get("definition"):
                definition = get_scoped_or_404(
                    scope.scoped(request.user, PipelineDefinition).filter(application=app), pk=data["definition"])
            if data.get("save") and data.get("source"):
                definition = services.save_definition(request.user, app, source=data["source"],
                                                      name=data.get("name", ""), branch=data.get("branch", ""))
                messages.success(request, f"Saved pipeline {definition.name}.")
                return redirect("pipelines:list", app.project.organization.slug, app.project.slug, app.slug)
            run = services.start_run(request.user, app, definition=definition, source=data.get("source") or None,
                                     workspace=data.get("workspace") or "DEV",
                                     params=_params_from_post(data))
        except ValidationError as exc:
            errors = exc.messages
            return render(request, "pipelines/list.html", self.context(errors=errors, form=data), status=422)
        except PermissionDenied as exc:
            raise PermissionDenied(str(exc))
        return redirect(run.get_absolute_url())


class RunView(AppMixin, View):
    """The run page. Live, it follows the run's WebSocket (/ws/runs/<id>/, static/dice/run.js):
    a push names the tasks that moved and the page fetches `?rows=ALIAS,...` (the head, the
    graph and just those rows) and replaces them in place; the whole body is fetched again only
    when the socket (re)opens, and polled only while it is down."""

    def get(self, request, *args, **kwargs):
        run = self.get_run()
        rows = request.GET.get("rows")
        if rows is not None:
            return self._rows(request, run, [a for a in rows.split(",") if a][:MAX_ROWS_PER_FETCH])
        tasks = self._with_engines(run, rows_of(run.tasks.order_by("position")))
        context = self._context(request, run, tasks, mark_safe(run_svg(tasks)))
        context["transitions"] = run.transitions.all()
        if request.htmx or request.GET.get("partial"):
            return render(request, "pipelines/_run_body.html", context)
        return render(request, "pipelines/run.html", context)

    def _context(self, request, run, tasks, svg) -> dict:
        return {
            "app": self.get_app(), "run": run, "tasks": tasks, "svg": svg,
            "live": run.status not in FINISHED_RUN, "poll_ms": POLL_MS,
            "can_change": scope.has_perm(request.user, permissions.CHANGE, run.application),
            "can_review": scope.has_perm(request.user, permissions.deploy_perm(run.workspace), run.application),
            "params_json": json.dumps(run.params, indent=1),
        }

    def _rows(self, request, run, aliases: list[str]):
        """The head, the graph (when the run is small enough to draw) and the rows of `aliases`."""
        tasks = self._with_engines(run, rows_of(run.tasks.filter(alias__in=aliases).order_by("position")))
        svg = ""
        if run.tasks.count() <= MAX_ROWS_DRAWN:
            svg = run_svg(rows_of(run.tasks.order_by("position")))
        return render(request, "pipelines/_run_rows.html", self._context(request, run, tasks, mark_safe(svg)))

    @staticmethod
    def _with_engines(run, tasks):
        """Each data action's application (a `spark` step's id, state, Spark UI), asked of its engine."""
        details = steps.engine_details(run, tasks)
        for task in tasks:
            task.engine = details.get(task.alias)
        return tasks


class RunActionView(AppMixin, View):
    """POST cancel, rerun, approve or reject."""

    def post(self, request, *args, **kwargs):
        run = self.get_run()
        verb = kwargs["verb"]
        try:
            if verb == "cancel":
                services.cancel_run(request.user, run)
                messages.success(request, f"Cancelled run {run.pk}.")
            elif verb == "rerun":
                run = services.rerun(request.user, run)
                messages.success(request, f"Started run {run.pk}.")
            elif verb in ("approve", "reject"):
                task = services.find_review_task(run, request.POST.get("task") or None)
                services.review_task(request.user, task, approve=verb == "approve",
                                     comment=request.POST.get("comment", ""))
                messages.success(request, f"{verb.capitalize()}d {task.alias}.")
            else:
                raise PermissionDenied(f"unknown action {verb!r}")
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
        return redirect(run.get_absolute_url())


class TaskLogView(AppMixin, View):
    def get(self, request, *args, **kwargs):
        task = get_scoped_or_404(
            scope.scoped(request.user, TaskRun).filter(run__application=self.get_app()).select_related("run"),
            pk=kwargs["task_id"])
        context = {
            "app": self.get_app(), "task": task, "run": task.run, "transitions": task.transitions.all(),
            "finished": task.status in FINISHED_TASK,
        }
        if request.GET.get("part") == "head":
            return render(request, "pipelines/_task_head.html", context)
        from apps.logs.services import task_panel_context

        return render(request, "pipelines/task_log.html", {**context, **task_panel_context(task)})


class RunListView(ObjectListView):
    """Every pipeline run in the user's organizations, newest first."""

    model = PipelineRun
    table_class = PipelineRunTable
    filterset_class = PipelineRunFilterSet
    title = "Pipeline runs"

    def get_queryset(self):
        return self.scoped_queryset().select_related("application__project__organization").defer("source")
