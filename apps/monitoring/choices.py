"""Choices of the monitoring models: channel kinds, the events a channel hears, delivery states."""

from django.db import models


class ChannelKind(models.TextChoices):
    # POST of the event as JSON, signed with the channel's secret (HMAC-SHA256).
    WEBHOOK = "webhook", "Webhook (JSON, signed)"
    # POST of {"text": ...} to a Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat).
    SLACK = "slack", "Slack-compatible incoming webhook"
    # A mail through the console's Django mail backend (DICE_EMAIL_* settings).
    EMAIL = "email", "E-mail"


class NotifyEvent(models.TextChoices):
    DEPLOYMENT_FAILED = "deployment.failed", "Deployment failed"
    DEPLOYMENT_HEALTHY = "deployment.healthy", "Deployment healthy"
    PIPELINE_FAILED = "pipeline.failed", "Pipeline failed"
    PIPELINE_SUCCEEDED = "pipeline.succeeded", "Pipeline succeeded"
    RUNTIME_DEGRADED = "runtime.degraded", "Runtime degraded"
    PREVIEW_TORN_DOWN = "preview.torn_down", "Preview torn down"
    ALERT_FIRING = "alert.firing", "Alert firing"
    ALERT_RESOLVED = "alert.resolved", "Alert resolved"
    # Sent by the test button to one channel whatever events it subscribes to.
    TEST = "test", "Test"


SUBSCRIBABLE = [e for e in NotifyEvent.values if e != NotifyEvent.TEST]


class DeliveryStatus(models.TextChoices):
    # Waiting for its first attempt, or for the next one after a failure (`next_attempt`).
    PENDING = "pending", "Pending"
    # A worker claimed it and is sending it now.
    SENDING = "sending", "Sending"
    # The receiver accepted it (2xx) or the mail backend took it.
    DELIVERED = "delivered", "Delivered"
    # Every attempt failed, or the target was refused (an address the console may not reach).
    FAILED = "failed", "Failed"


class AlertMetric(models.TextChoices):
    CPU = "cpu_millicores", "CPU (millicores, the service's replicas together)"
    MEMORY = "memory_mib", "Memory (MiB, the service's replicas together)"
    RESTARTS = "restarts", "Restarts (of the service's current replicas)"
    READY = "ready", "Ready replicas"


class AlertOperator(models.TextChoices):
    ABOVE = "above", "above"
    BELOW = "below", "below"


class AlertState(models.TextChoices):
    # The metric is within bounds (or has not been measured yet).
    OK = "ok", "OK"
    # Out of bounds for at least the rule's duration; notified once when it started.
    FIRING = "firing", "Firing"
