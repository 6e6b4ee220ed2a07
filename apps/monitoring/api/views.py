"""Viewsets of the notifications API; every one reads through the organization scope and changes
through apps.monitoring.services."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.monitoring import alerts, services
from apps.monitoring.api import serializers
from apps.monitoring.models import AlertRule, NotificationChannel, NotificationDelivery
from dice_console.api import ScopedGenericViewSet, ScopedModelViewSet


def _of_project(qs, project: str | None, field: str):
    """`?project=` as an id or org/project (anything else matches nothing)."""
    if not project:
        return qs
    if project.isdigit():
        return qs.filter(**{f"{field}_id": int(project)})
    if project.count("/") == 1:
        org, slug = project.split("/")
        return qs.filter(**{f"{field}__organization__slug": org, f"{field}__slug": slug})
    return qs.none()


class ChannelViewSet(ScopedModelViewSet):
    """A project's notification channels: webhook (JSON, signed), Slack-compatible or e-mail."""

    model = NotificationChannel
    serializer_class = serializers.ChannelSerializer
    select_related = ("project__organization",)

    def get_queryset(self):
        return _of_project(super().get_queryset(), self.request.query_params.get("project"), "project")

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        project = data.pop("project")
        channel, secret = services.create_channel(self.request.user, project, **data)
        serializer.instance = channel
        if secret:
            serializer.context["secrets"] = {channel.pk: secret}

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        data.pop("project", None)
        serializer.instance = services.update_channel(self.request.user, serializer.instance, **data)

    def perform_destroy(self, instance):
        services.delete_channel(self.request.user, instance)

    @extend_schema(request=None, responses=serializers.DeliverySerializer)
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """Send a test event to this channel now (the answer is the delivery, sent by the worker)."""
        delivery = services.send_test(request.user, self.get_object())
        return Response(serializers.DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses=serializers.ChannelSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk=None):
        """A new signing secret for a webhook channel, shown in this answer only."""
        channel = self.get_object()
        secret = services.rotate_secret(request.user, channel)
        return Response(serializers.ChannelSerializer(channel, context={
            "request": request, "secrets": {channel.pk: secret}}).data)


class DeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedGenericViewSet):
    """The delivery history: every event sent to a channel, its attempts and outcome."""

    model = NotificationDelivery
    serializer_class = serializers.DeliverySerializer
    select_related = ("channel",)

    def get_queryset(self):
        qs = _of_project(super().get_queryset(), self.request.query_params.get("project"), "channel__project")
        for param, field in (("channel", "channel_id"), ("status", "status"), ("event", "event")):
            value = self.request.query_params.get(param)
            if value:
                if field == "channel_id" and not value.isdigit():
                    return qs.none()
                qs = qs.filter(**{field: value})
        return qs


class AlertRuleViewSet(ScopedModelViewSet):
    """Alert rules: a service's metric beyond a threshold for a duration notifies the project."""

    model = AlertRule
    serializer_class = serializers.AlertRuleSerializer
    select_related = ("runtime__application__project__organization", "runtime__workspace")

    def get_queryset(self):
        qs = _of_project(super().get_queryset(), self.request.query_params.get("project"),
                         "runtime__application__project")
        runtime = self.request.query_params.get("runtime")
        if runtime:
            qs = qs.filter(runtime_id=int(runtime)) if runtime.isdigit() else qs.none()
        return qs

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        serializer.instance = alerts.create_rule(self.request.user, data.pop("runtime"), **data)

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        data.pop("runtime", None)
        serializer.instance = alerts.update_rule(self.request.user, serializer.instance, **data)

    def perform_destroy(self, instance):
        alerts.delete_rule(self.request.user, instance)
