"""The tenant scope of the monitoring models, registered with apps.projects.scope at start-up."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.monitoring.models import AlertRule, NotificationChannel, NotificationDelivery
from apps.projects import scope


def channels_for(user) -> QuerySet[NotificationChannel]:
    return NotificationChannel.objects.filter(project__in=scope.projects_for(user))


def deliveries_for(user) -> QuerySet[NotificationDelivery]:
    return NotificationDelivery.objects.filter(channel__project__in=scope.projects_for(user))


def alert_rules_for(user) -> QuerySet[AlertRule]:
    return AlertRule.objects.filter(runtime__application__in=scope.applications_for(user))


def register() -> None:
    scope.register(NotificationChannel, channels_for)
    scope.register(NotificationDelivery, deliveries_for)
    scope.register(AlertRule, alert_rules_for)
