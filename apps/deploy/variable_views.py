"""The environment variables page of an application, one workspace at a time: the variables (a
secret's value is write-only), a form to set or replace one with the name rules checked in the
browser and again by apps.deploy.variables, delete with a confirmation, and the runtimes of the
workspace that take the change on their next deploy."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View

from apps.deploy import variables
from apps.deploy.models import EnvironmentVariable, Runtime
from apps.deploy.views import AppReleasesMixin
from apps.projects import permissions, scope
from apps.projects.choices import WorkspaceKind
from dice_console.views import get_scoped_or_404
from scheduler.envvars import VARIABLE_NAME_MAX

# What the browser checks before sending (the server checks again, with the reason): a POSIX name
# that does not start with the platform's DICE_/SELF_ nor is PORT or PORTn.
NAME_PATTERN = r"(?![Dd][Ii][Cc][Ee]_|[Ss][Ee][Ll][Ff]_|[Pp][Oo][Rr][Tt][0-9]*$)[A-Za-z_][A-Za-z0-9_]*"


class VariablesView(AppReleasesMixin, View):
    model = EnvironmentVariable

    def workspace(self, app):
        kind = (self.kwargs.get("workspace") or "DEV").upper()
        if kind not in WorkspaceKind.values:
            raise Http404(f"no workspace {kind}")
        return app.project.workspaces.select_related("cluster").get(kind=kind)

    def url(self, app, kind: str) -> str:
        return reverse("deploy:variables", args=[app.project.organization.slug, app.project.slug, app.slug, kind])

    def context(self, app, ws, **extra):
        user = self.request.user
        return {
            "app": app,
            "workspace": ws,
            "tabs": [(k, self.url(app, k)) for k in WorkspaceKind.values],
            "variables": variables.variables_of(user, app, ws),
            "runtimes": scope.scoped(user, Runtime).filter(application=app, workspace=ws).order_by("name"),
            "can_change": scope.has_perm(user, permissions.CHANGE, app)
            and scope.has_perm(user, permissions.deploy_perm(ws.kind), app),
            "name_pattern": NAME_PATTERN,
            "name_max": VARIABLE_NAME_MAX,
            **extra,
        }

    def get(self, request, **kwargs):
        app = self.get_app()
        return render(request, "deploy/variables.html", self.context(app, self.workspace(app)))

    def post(self, request, **kwargs):
        app = self.get_app()
        ws = self.workspace(app)
        data, user = request.POST, request.user
        what = data.get("action", "")
        try:
            if what == "set":
                variable = variables.set_variable(user, app, ws, name=data.get("name", ""),
                                                  value=data.get("value", ""), secret=bool(data.get("secret")))
                messages.success(request, f"Saved {'secret ' if variable.secret else ''}{variable.name} in {ws.kind}: "
                                          "runtimes take it on their next deploy.")
            elif what == "delete":
                variable = get_scoped_or_404(variables.variables_of(user, app, ws), pk=data.get("variable") or 0)
                variables.unset_variable(user, variable)
                messages.success(request, f"Deleted {variable.name} of {ws.kind}: runtimes drop it on their next deploy.")
            else:
                raise ValidationError({"action": f"unknown action {what!r}"})
        except ValidationError as exc:
            problems = [f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()] if hasattr(exc, "error_dict") \
                else exc.messages
            return render(request, "deploy/variables.html", self.context(app, ws, errors=problems, form=data),
                          status=422)
        except PermissionDenied as exc:
            raise PermissionDenied(str(exc)) from None
        return redirect(self.url(app, ws.kind))
