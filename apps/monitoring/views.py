"""The notifications page of a project: its channels (add, enable, test, delete) and the latest
deliveries with their attempts."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views import View

from apps.deploy.models import Runtime
from apps.monitoring import graphs, services
from apps.monitoring.forms import ChannelForm
from apps.monitoring.models import NotificationChannel, NotificationDelivery
from apps.projects import permissions, scope
from dice_console.views import ScopedMixin, get_scoped_or_404, require

HISTORY = 50


class NotificationsView(ScopedMixin, View):
    model = NotificationChannel

    def get_project(self):
        return get_scoped_or_404(scope.projects_for(self.request.user).select_related("organization"),
                                 organization__slug=self.kwargs["org"], slug=self.kwargs["project"])

    def render_page(self, project, form, new_secret=None, status=200):
        channels = NotificationChannel.objects.filter(project=project).order_by("name")
        deliveries = (NotificationDelivery.objects.filter(channel__project=project)
                      .select_related("channel").order_by("-created", "-id")[:HISTORY])
        return render(self.request, "monitoring/notifications.html", {
            "project": project, "channels": channels, "deliveries": deliveries, "form": form,
            "new_secret": new_secret,
            "can_change": scope.has_perm(self.request.user, permissions.CHANGE, project),
        }, status=status)

    def get(self, request, org, project):
        return self.render_page(self.get_project(), ChannelForm())

    def post(self, request, org, project):
        obj = self.get_project()
        require(request.user, permissions.CHANGE, obj)
        here = redirect("monitoring:notifications", org=org, project=project)
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


class RuntimeGraphsView(ScopedMixin, View):
    """The runtime page's graphs alone (htmx refreshes them, or switches the window)."""

    model = Runtime

    def get(self, request, pk: int):
        runtime = get_scoped_or_404(self.scoped_queryset().select_related("application__project__organization"), pk=pk)
        return render(request, "monitoring/_graphs_body.html",
                      graphs.runtime_graphs(runtime, request.GET.get("window", "1h")))
