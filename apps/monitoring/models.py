"""Notification channels of a project and the history of what was delivered to them."""

from django.db import models

from apps.monitoring.choices import (
    AlertMetric,
    AlertOperator,
    AlertState,
    ChannelKind,
    DeliveryStatus,
    NotifyEvent,
)


class NotificationChannel(models.Model):
    """Where a project's events are sent: a webhook, a Slack-compatible incoming webhook or e-mail
    addresses, with the events it subscribes to. The URL (a Slack URL is itself a credential) and
    the webhook's signing secret are encrypted at rest (apps.clusters.crypto)."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="notification_channels")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=ChannelKind.choices)
    url_encrypted = models.TextField(blank=True)
    url_hint = models.CharField(max_length=300, blank=True, help_text="scheme://host/… (the URL is not shown back)")
    recipients = models.TextField(blank=True, help_text="E-mail addresses, comma-separated")
    secret_encrypted = models.TextField(blank=True)
    events = models.JSONField(default=list, help_text="The events sent (NotifyEvent values)")
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "name", "id"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="notification_channel_name_per_project")]

    def __str__(self):
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def organization(self):
        return self.project.organization


class NotificationDelivery(models.Model):
    """One event sent (or being sent) to one channel: its payload, each attempt's outcome and
    when the next attempt is due. The worker claims it by moving it to `sending`."""

    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=30, choices=NotifyEvent.choices)
    subject = models.CharField(max_length=300)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING,
                              db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    response_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    next_attempt = models.DateTimeField(null=True, blank=True, db_index=True)
    claimed = models.DateTimeField(null=True, blank=True)
    delivered = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self):
        return f"{self.event} to {self.channel} ({self.status})"

    @property
    def organization(self):
        return self.channel.project.organization

    @property
    def project(self):
        return self.channel.project


class MetricSample(models.Model):
    """One measurement of a service (replica "" : the service as a whole, the sum of its
    replicas) or of one of its replicas, at a resolution: 0 for the collector's raw samples (kept
    DICE_METRICS_RAW_HOURS), 300 for five-minute averages of the service (kept
    DICE_METRICS_RETENTION_DAYS)."""

    RAW, FIVE_MINUTES = 0, 300

    runtime = models.ForeignKey("deploy.Runtime", on_delete=models.CASCADE, related_name="metric_samples")
    service = models.CharField(max_length=100)
    replica = models.CharField(max_length=253, blank=True)
    resolution = models.PositiveIntegerField(default=RAW)
    at = models.DateTimeField()
    cpu_millicores = models.FloatField(null=True, blank=True)
    memory_bytes = models.BigIntegerField(null=True, blank=True)
    restarts = models.PositiveIntegerField(default=0)
    replicas = models.PositiveIntegerField(default=0, help_text="Replicas measured (the service's row)")
    ready = models.PositiveIntegerField(default=0)
    # The service's front proxy (local), counters since it started: connections, answered ones and
    # the sum of their times to the first response byte. Null where no proxy sees the traffic.
    connections = models.BigIntegerField(null=True, blank=True)
    replies = models.BigIntegerField(null=True, blank=True)
    first_byte_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["runtime", "service", "replica", "at"]
        indexes = [models.Index(fields=["runtime", "resolution", "at"], name="metric_runtime_res_at"),
                   models.Index(fields=["resolution", "at"], name="metric_res_at")]

    def __str__(self):
        return f"{self.runtime_id}/{self.service}/{self.replica or '*'} @ {self.at}"


class RuntimeHealth(models.Model):
    """The health the collector last saw for a runtime, so a runtime that becomes degraded after
    a healthy deployment is notified once (not at every collection)."""

    runtime = models.OneToOneField("deploy.Runtime", on_delete=models.CASCADE, related_name="observed_health")
    health = models.CharField(max_length=20)
    reason = models.TextField(blank=True)
    since = models.DateTimeField()
    metrics_available = models.BooleanField(default=True)
    metrics_reason = models.TextField(blank=True)
    # The newest scaling event of the cluster already copied into the audit log (unix time).
    scaling_seen = models.FloatField(default=0.0)

    def __str__(self):
        return f"{self.runtime_id}: {self.health}"


class AlertRule(models.Model):
    """A threshold on one service's metric: when every measurement over `duration` seconds is
    beyond it, the rule fires (alert.firing to the project's channels); when the metric is back, it
    resolves (alert.resolved). Evaluated by the worker after each collection."""

    runtime = models.ForeignKey("deploy.Runtime", on_delete=models.CASCADE, related_name="alert_rules")
    name = models.CharField(max_length=100)
    service = models.CharField(max_length=100)
    metric = models.CharField(max_length=20, choices=AlertMetric.choices)
    operator = models.CharField(max_length=5, choices=AlertOperator.choices, default=AlertOperator.ABOVE)
    threshold = models.FloatField()
    duration = models.PositiveIntegerField(default=300, help_text="Seconds the metric must stay beyond the threshold")
    enabled = models.BooleanField(default=True)
    state = models.CharField(max_length=6, choices=AlertState.choices, default=AlertState.OK)
    since = models.DateTimeField(null=True, blank=True, help_text="When the state last changed")
    value = models.FloatField(null=True, blank=True, help_text="The last value evaluated")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["runtime", "name", "id"]
        constraints = [models.UniqueConstraint(fields=["runtime", "name"], name="alert_rule_name_per_runtime")]

    def __str__(self):
        return f"{self.name}: {self.service} {self.metric} {self.operator} {self.threshold:g} for {self.duration}s"

    @property
    def organization(self):
        return self.runtime.organization

    @property
    def project(self):
        return self.runtime.project


class NodeSample(models.Model):
    """One measurement of a cluster's node (CPU millicores, memory bytes in use), raw or as a
    five-minute average, like MetricSample."""

    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.CASCADE, related_name="node_samples")
    node = models.CharField(max_length=253)
    resolution = models.PositiveIntegerField(default=0)
    at = models.DateTimeField()
    cpu_millicores = models.FloatField(null=True, blank=True)
    memory_bytes = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["cluster", "node", "at"]
        indexes = [models.Index(fields=["cluster", "resolution", "at"], name="node_sample_cluster_res_at")]

    def __str__(self):
        return f"{self.cluster_id}/{self.node} @ {self.at}"
