"""Serializers of the notifications API. A channel's URL and secret are write-only: the URL is
shown back as its hint (scheme://host/…), the webhook's secret only in the answer that made it."""

from __future__ import annotations

from rest_framework import serializers

from apps.deploy.models import Runtime
from apps.monitoring.choices import SUBSCRIBABLE, AlertMetric, AlertOperator, ChannelKind
from apps.monitoring.models import AlertRule, NotificationChannel, NotificationDelivery
from apps.projects import scope


class ProjectRefField(serializers.Field):
    """A project the requesting user can see, by id or as "org/project"."""

    default_error_messages = {"missing": "no project {value!r} you can see (give its id or org/project)"}

    def to_representation(self, value):
        return value.pk

    def to_internal_value(self, data):
        request = self.context.get("request")
        projects = scope.projects_for(request.user if request else None).select_related("organization")
        text = str(data).strip()
        if text.isdigit():
            found = projects.filter(pk=int(text)).first()
        elif text.count("/") == 1:
            org, slug = text.split("/")
            found = projects.filter(organization__slug=org, slug=slug).first()
        else:
            found = None
        if found is None:
            self.fail("missing", value=text)
        return found


class ChannelSerializer(serializers.ModelSerializer):
    project = ProjectRefField()
    project_name = serializers.SerializerMethodField()
    url = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=2000,
                                help_text="The webhook's URL (never shown back; `url_hint` is)")
    events = serializers.ListField(child=serializers.CharField(max_length=40), required=False, max_length=20,
                                   help_text="Events sent to the channel (all when omitted): " + ", ".join(SUBSCRIBABLE))
    kind = serializers.ChoiceField(choices=ChannelKind.choices)
    secret = serializers.SerializerMethodField(help_text="The webhook's signing secret: only when it was just made")

    class Meta:
        model = NotificationChannel
        fields = ["id", "project", "project_name", "name", "kind", "url", "url_hint", "recipients", "events",
                  "enabled", "created", "secret"]
        read_only_fields = ["id", "url_hint", "created"]
        validators = []  # the services check the name's uniqueness with a message naming it

    def get_project_name(self, obj) -> str:
        return f"{obj.project.organization.slug}/{obj.project.slug}"

    def get_secret(self, obj) -> str | None:
        return self.context.get("secrets", {}).get(obj.pk)

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list | tuple):
            fields["project"].read_only = True
        return fields


class DeliverySerializer(serializers.ModelSerializer):
    channel_name = serializers.CharField(source="channel.name", read_only=True)

    class Meta:
        model = NotificationDelivery
        fields = ["id", "channel", "channel_name", "event", "subject", "payload", "status", "attempts",
                  "response_code", "last_error", "created", "next_attempt", "delivered"]
        read_only_fields = fields


class RuntimeRefField(serializers.Field):
    """A runtime the requesting user can see, by id."""

    default_error_messages = {"missing": "no runtime {value!r} you can see (give its id)"}

    def to_representation(self, value):
        return value.pk

    def to_internal_value(self, data):
        request = self.context.get("request")
        text = str(data).strip()
        found = scope.scoped(request.user if request else None, Runtime).select_related(
            "application__project__organization").filter(pk=int(text)).first() if text.isdigit() else None
        if found is None:
            self.fail("missing", value=text)
        return found


class AlertRuleSerializer(serializers.ModelSerializer):
    runtime = RuntimeRefField()
    runtime_name = serializers.SerializerMethodField()
    metric = serializers.ChoiceField(choices=AlertMetric.choices)
    operator = serializers.ChoiceField(choices=AlertOperator.choices, required=False)

    class Meta:
        model = AlertRule
        fields = ["id", "runtime", "runtime_name", "name", "service", "metric", "operator", "threshold", "duration",
                  "enabled", "state", "since", "value", "created"]
        read_only_fields = ["id", "state", "since", "value", "created"]
        validators = []

    def get_runtime_name(self, obj) -> str:
        return str(obj.runtime)

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list | tuple):
            fields["runtime"].read_only = True
        return fields
