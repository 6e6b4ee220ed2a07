"""The notifications page of a project: its channels (add, enable, test, delete) and the latest
deliveries with their attempts."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views import View

from apps.clusters.scope import clusters_for
from apps.deploy.models import Runtime
from apps.monitoring import alerts, graphs, services
from apps.monitoring.forms import AlertRuleForm, ChannelForm
from apps.monitoring.models import AlertRule, NotificationChannel, NotificationDelivery
from apps.projects import permissions, scope
from dice_console.views import ScopedMixin, get_scoped_or_404, require

HISTORY = 50


class NotificationsView(ScopedMixin, View):
    model = NotificationChannel

    def get_project(self):
        return get_scoped_or_404(scope.projects_for(self.request.user).select_related("organization"),
                                 organization__slug=self.kwargs["org"], slug=self.kwargs["project"])

    def runtimes(self, project):
        return scope.scoped(self.request.user, Runtime).filter(application__project=project).select_related(
            "application", "workspace").order_by("application__slug", "workspace__kind", "name")

    def render_page(self, project, form, new_secret=None, status=200, rule_form=None):
        rules = AlertRule.objects.filter(runtime__application__project=project).select_related(
            "runtime__application", "runtime__workspace").order_by("runtime_id", "name")
        channels = NotificationChannel.objects.filter(project=project).order_by("name")
        deliveries = (NotificationDelivery.objects.filter(channel__project=project)
                      .select_related("channel").order_by("-created", "-id")[:HISTORY])
        return render(self.request, "monitoring/notifications.html", {
            "project": project, "channels": channels, "deliveries": deliveries, "form": form,
            "new_secret": new_secret, "rules": rules,
            "rule_form": rule_form or AlertRuleForm(runtimes=self.runtimes(project)),
            "can_change": scope.has_perm(self.request.user, permissions.CHANGE, project),
        }, status=status)

    def get(self, request, org, project):
        return self.render_page(self.get_project(), ChannelForm())

    def post(self, request, org, project):
        obj = self.get_project()
        require(request.user, permissions.CHANGE, obj)
        here = redirect("monitoring:notifications", org=org, project=project)
        if "delete_rule" in request.POST:
            rule = get_scoped_or_404(AlertRule.objects.filter(runtime__application__project=obj),
                                     pk=request.POST["delete_rule"])
            alerts.delete_rule(request.user, rule)
            messages.success(request, f"Deleted the alert rule {rule.name}.")
            return here
        if "add_rule" in request.POST:
            return self.add_rule(request, obj, here)
        for verb in ("test", "delete", "toggle"):
            if verb in request.POST:
                channel = get_scoped_or_404(NotificationChannel.objects.filter(project=obj), pk=request.POST[verb])
                if verb == "test":
                    services.send_test(request.user, channel)
                    messages.success(request, f"Test notification queued for {channel.name}; see the history below.")
                elif verb == "delete":
                    services.delete_channel(request.user, channel)
                    messages.success(request, f"Deleted {channel.name}.")
                else:
                    services.update_channel(request.user, channel, enabled=not channel.enabled)
                return here
        form = ChannelForm(request.POST)
        if not form.is_valid():
            return self.render_page(obj, form, status=400)
        data = form.cleaned_data
        try:
            channel, secret = services.create_channel(
                request.user, obj, name=data["name"], kind=data["kind"], url=data["url"] or None,
                recipients=data["recipients"] or None, events=data["events"] or None)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
            return self.render_page(obj, form, status=400)
        messages.success(request, f"Added {channel.name}.")
        if secret:
            return self.render_page(obj, ChannelForm(), new_secret=(channel.name, secret))
        return here


    def add_rule(self, request, project, here):
        form = AlertRuleForm(request.POST, runtimes=self.runtimes(project))
        if form.is_valid():
            data = dict(form.cleaned_data)
            try:
                rule = alerts.create_rule(request.user, data.pop("runtime"), **data)
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                messages.success(request, f"Added the alert rule {rule.name}.")
                return here
        return self.render_page(project, ChannelForm(), status=400, rule_form=form)


class RuntimeGraphsView(ScopedMixin, View):
    """The runtime page's graphs alone (htmx refreshes them, or switches the window)."""

    model = Runtime

    def get(self, request, pk: int):
        runtime = get_scoped_or_404(self.scoped_queryset().select_related("application__project__organization"), pk=pk)
        return render(request, "monitoring/_graphs_body.html",
                      graphs.runtime_graphs(runtime, request.GET.get("window", "1h")))


class ClusterUsageView(ScopedMixin, View):
    """The cluster page's node usage alone (htmx refreshes it, or switches the window)."""

    def get(self, request, name: str):
        cluster = get_scoped_or_404(clusters_for(request.user), name=name)
        return render(request, "monitoring/_cluster_usage_body.html",
                      graphs.cluster_usage(cluster, request.GET.get("window", "1h")))
