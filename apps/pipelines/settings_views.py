"""A project's pipeline settings page: configs and secrets (values of secrets are write-only),
branch rules, and the webhook setup of its applications (the address to paste into GitHub, GitLab
or Gitea, with a copy button; the shared secret set or rotated, shown once)."""

from __future__ import annotations

import secrets as token_source

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View

from apps.pipelines import services
from apps.pipelines.branches import WEBHOOK_SECRET_KEY
from apps.pipelines.models import BranchRule, ProjectConfig
from apps.pipelines.webhooks import PROVIDERS
from apps.projects import permissions, scope
from apps.projects.choices import WorkspaceKind
from dice_console.views import ScopedMixin, get_scoped_or_404


class ProjectSettingsView(ScopedMixin, View):
    model = ProjectConfig

    def get_project(self):
        return get_scoped_or_404(scope.projects_for(self.request.user).select_related("organization"),
                                 organization__slug=self.kwargs["org"], slug=self.kwargs["project"])

    def context(self, project, **extra):
        user = self.request.user
        apps = scope.applications_for(user).filter(project=project).order_by("slug")
        hooks = [
            {"app": app, "urls": [(p, self.request.build_absolute_uri(reverse("api:pipeline-webhook", args=[p, app.pk])))
                                  for p in PROVIDERS]}
            for app in apps
        ]
        return {
            "project": project,
            "configs": scope.scoped(user, ProjectConfig).filter(project=project).order_by("key"),
            "rules": scope.scoped(user, BranchRule).filter(project=project).order_by("-priority", "pattern"),
            "hooks": hooks,
            "webhook_secret_set": ProjectConfig.objects.filter(project=project, key=WEBHOOK_SECRET_KEY).exists(),
            "workspaces": WorkspaceKind.values,
            "can_change": scope.has_perm(user, permissions.CHANGE, project),
            **extra,
        }

    def get(self, request, **kwargs):
        return render(request, "pipelines/project_settings.html", self.context(self.get_project()))

    def post(self, request, **kwargs):
        project = self.get_project()
        data, user = request.POST, request.user
        what = data.get("action", "")
        try:
            if what == "config":
                config = services.set_config(user, project, key=data.get("key", ""), value=data.get("value", ""),
                                             secret=bool(data.get("secret")))
                messages.success(request, f"Saved {'secret ' if config.secret else ''}config {config.key}.")
            elif what == "config-delete":
                config = get_scoped_or_404(scope.scoped(user, ProjectConfig).filter(project=project),
                                           pk=data.get("config") or 0)
                services.delete_config(user, config)
                messages.success(request, f"Deleted config {config.key}.")
            elif what == "rule":
                priority = data.get("priority", "100").strip() or "100"
                if not priority.lstrip("-").isdigit():
                    raise ValidationError({"priority": "a whole number"})
                rule = services.save_branch_rule(user, project, pattern=data.get("pattern", ""),
                                                 workspace=data.get("workspace", ""), priority=int(priority))
                messages.success(request, f"Branches matching {rule.pattern} now run in {rule.workspace}.")
            elif what == "rule-delete":
                rule = get_scoped_or_404(scope.scoped(user, BranchRule).filter(project=project), pk=data.get("rule") or 0)
                services.delete_branch_rule(user, rule)
                messages.success(request, f"Deleted the rule for {rule.pattern}.")
            elif what == "webhook-secret":
                value = token_source.token_urlsafe(32)
                services.set_config(user, project, key=WEBHOOK_SECRET_KEY, value=value, secret=True)
                return render(request, "pipelines/project_settings.html", self.context(project, new_secret=value))
            else:
                raise ValidationError({"action": f"unknown action {what!r}"})
        except ValidationError as exc:
            problems = [f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()] if hasattr(exc, "error_dict") \
                else exc.messages
            return render(request, "pipelines/project_settings.html",
                          self.context(project, errors=problems, form=data), status=422)
        except PermissionDenied as exc:
            raise PermissionDenied(str(exc)) from None
        return redirect(reverse("pipelines:project_settings", args=[project.organization.slug, project.slug]))
