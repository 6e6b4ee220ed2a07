"""Serializers of the pipelines API."""

from __future__ import annotations

from rest_framework import serializers

from apps.pipelines.models import BranchRule, PipelineDefinition, PipelineRun, ProjectConfig, TaskRun
from apps.pipelines.secrets import MASK
from apps.projects import scope
from dice_console.api import ScopedRelationsMixin


class _Scoped(ScopedRelationsMixin, serializers.ModelSerializer):
    """Related application/project fields that only find objects inside the user's scope."""

    scoped_relations = ("application", "project")


class PipelineDefinitionSerializer(_Scoped):
    application = serializers.PrimaryKeyRelatedField(queryset=PipelineDefinition.objects.none())
    source = serializers.CharField(trim_whitespace=False, max_length=1024 * 1024)
    name = serializers.CharField(required=False, allow_blank=True, max_length=100)

    class Meta:
        model = PipelineDefinition
        fields = ["id", "application", "name", "path", "branch", "source", "created", "updated"]
        read_only_fields = ["id", "created", "updated"]
        validators = []


class TaskRunSerializer(serializers.ModelSerializer):
    log_url = serializers.SerializerMethodField()

    class Meta:
        model = TaskRun
        fields = [
            "id", "run", "alias", "type", "stage", "needs", "executor", "status", "attempt", "max_attempts",
            "params", "outputs", "exit_code", "job_name", "cluster", "reason", "review", "reviewed_by",
            "last_line", "created", "started", "finished", "log_url",
        ]
        read_only_fields = fields

    def get_log_url(self, obj) -> str:
        return f"/api/task-runs/{obj.pk}/log/"


class PipelineRunSerializer(_Scoped):
    application = serializers.PrimaryKeyRelatedField(queryset=PipelineRun.objects.none())
    definition = serializers.PrimaryKeyRelatedField(queryset=PipelineDefinition.objects.none(), required=False,
                                                    allow_null=True)
    source = serializers.CharField(trim_whitespace=False, max_length=1024 * 1024, required=False, allow_blank=True,
                                   write_only=True)
    params = serializers.DictField(required=False, default=dict)
    workspace = serializers.CharField(required=False, default="DEV")
    name = serializers.CharField(required=False, allow_blank=True, max_length=100)
    tasks = TaskRunSerializer(many=True, read_only=True)

    class Meta:
        model = PipelineRun
        fields = [
            "id", "application", "definition", "name", "source", "workspace", "params", "trigger",
            "trigger_payload", "status", "reason", "created_by_name", "rerun_of", "created", "started",
            "finished", "tasks",
        ]
        read_only_fields = ["id", "trigger", "trigger_payload", "status", "reason", "created_by_name", "rerun_of",
                            "created", "started", "finished", "tasks"]

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        fields["definition"].queryset = PipelineDefinition.objects.filter(
            application__in=scope.applications_for(request.user if request else None))
        return fields


class PipelineRunListSerializer(PipelineRunSerializer):
    class Meta(PipelineRunSerializer.Meta):
        fields = [f for f in PipelineRunSerializer.Meta.fields if f != "tasks"]


class ReviewSerializer(serializers.Serializer):
    task = serializers.CharField(required=False, allow_blank=True, help_text="alias of the manual-review task")
    approve = serializers.BooleanField(default=True)
    comment = serializers.CharField(required=False, allow_blank=True, default="")


class TaskLogSerializer(serializers.Serializer):
    """One stored line of a task run's log (apps.logs keeps them in chunks)."""

    number = serializers.IntegerField()
    attempt = serializers.IntegerField()
    timestamp = serializers.SerializerMethodField()
    stream = serializers.CharField()
    text = serializers.CharField()

    def get_timestamp(self, line) -> str:
        import datetime as dt

        return dt.datetime.fromtimestamp(line.timestamp, tz=dt.UTC).isoformat().replace("+00:00", "Z")


class TaskLogPageSerializer(serializers.Serializer):
    """A page of a task run's log (documentation of GET /api/task-runs/{id}/log/)."""

    task_run = serializers.IntegerField()
    status = serializers.CharField()
    last_line = serializers.IntegerField()
    complete = serializers.BooleanField()
    lines = TaskLogSerializer(many=True)


class ProjectConfigSerializer(_Scoped):
    """Secret values are write-only: they read back as ******."""

    project = serializers.PrimaryKeyRelatedField(queryset=ProjectConfig.objects.none())
    value = serializers.CharField(trim_whitespace=False, allow_blank=True, max_length=65536)

    class Meta:
        model = ProjectConfig
        fields = ["id", "project", "key", "value", "secret", "created", "updated"]
        read_only_fields = ["id", "created", "updated"]
        validators = []

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["value"] = MASK if instance.secret else instance.value
        return data


class BranchRuleSerializer(_Scoped):
    project = serializers.PrimaryKeyRelatedField(queryset=BranchRule.objects.none())

    class Meta:
        model = BranchRule
        fields = ["id", "project", "pattern", "workspace", "priority", "created"]
        read_only_fields = ["id", "created"]
        validators = []


class WebhookAnswerSerializer(serializers.Serializer):
    """What a webhook delivery did: the runs it started (202 when any), and why others did not."""

    runs = serializers.ListField(child=serializers.IntegerField())
    notes = serializers.ListField(child=serializers.CharField())
