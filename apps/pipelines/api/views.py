"""Viewsets of the pipelines API. Every change goes through apps.pipelines.services."""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status
from rest_framework.decorators import action, api_view, authentication_classes, permission_classes
from rest_framework.response import Response

from apps.pipelines import filtersets, services, triggers
from apps.pipelines.api import serializers
from apps.pipelines.models import BranchRule, PipelineDefinition, PipelineRun, ProjectConfig, TaskRun
from apps.projects.models import Application
from dice_console.api import ScopedGenericViewSet, ScopedModelViewSet

LOG_PAGE = 1000


class PipelineDefinitionViewSet(ScopedModelViewSet):
    """Pipeline definitions (pipeline.yml texts) of the applications in scope."""

    model = PipelineDefinition
    serializer_class = serializers.PipelineDefinitionSerializer
    filterset_class = filtersets.PipelineDefinitionFilterSet
    select_related = ("application__project__organization",)

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.save_definition(
            self.request.user, data["application"], source=data["source"], name=data.get("name", ""),
            path=data.get("path") or "pipeline.yml", branch=data.get("branch", ""))

    def perform_update(self, serializer):
        obj = serializer.instance
        data = serializer.validated_data
        if data.get("name", obj.name) != obj.name:
            raise ValidationError({"name": "a definition cannot be renamed; create another one"})
        serializer.instance = services.save_definition(
            self.request.user, obj.application, source=data.get("source", obj.source), name=obj.name,
            path=data.get("path", obj.path), branch=data.get("branch", obj.branch))

    def perform_destroy(self, instance):
        services.delete_definition(self.request.user, instance)


class PipelineRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                         ScopedGenericViewSet):
    """Runs: POST starts one (from `definition` or an inline `source`); cancel, approve, rerun."""

    model = PipelineRun
    filterset_class = filtersets.PipelineRunFilterSet
    select_related = ("application__project__organization",)
    http_method_names = ["get", "post", "head", "options"]

    def get_queryset(self):
        qs = super().get_queryset()
        if self.action == "list":
            return qs.defer("source")
        return qs.prefetch_related("tasks")

    def get_serializer_class(self):
        if self.action == "list":
            return serializers.PipelineRunListSerializer
        if self.action == "approve":
            return serializers.ReviewSerializer
        return serializers.PipelineRunSerializer

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        run = services.start_run(
            request.user, data["application"], source=data.get("source") or None, definition=data.get("definition"),
            workspace=data.get("workspace") or "DEV", params=data.get("params") or {}, name=data.get("name", ""))
        return Response(serializers.PipelineRunSerializer(run, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        run = services.cancel_run(request.user, self.get_object())
        return Response(serializers.PipelineRunSerializer(run, context=self.get_serializer_context()).data)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def rerun(self, request, pk=None):
        run = services.rerun(request.user, self.get_object())
        return Response(serializers.PipelineRunSerializer(run, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Approve (or, with approve=false, reject) the waiting manual-review task."""
        run = self.get_object()
        body = serializers.ReviewSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        task = services.find_review_task(run, body.validated_data.get("task") or None)
        services.review_task(request.user, task, approve=body.validated_data["approve"],
                             comment=body.validated_data.get("comment", ""))
        run.refresh_from_db()
        return Response(serializers.PipelineRunSerializer(run, context=self.get_serializer_context()).data)


class TaskRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedGenericViewSet):
    """Task runs (read only); /log/?after=N gives the persisted lines numbered above N."""

    model = TaskRun
    serializer_class = serializers.TaskRunSerializer
    filterset_class = filtersets.TaskRunFilterSet

    @action(detail=True, methods=["get"])
    def log(self, request, pk=None):
        task = self.get_object()
        after = request.query_params.get("after", "0")
        if not after.isdigit():
            raise ValidationError({"after": "a line number"})
        from apps.logs import services as log_services
        from apps.pipelines.choices import FINISHED_TASK

        lines = log_services.read_task_lines(task.pk, int(after), LOG_PAGE)

        complete = task.status in FINISHED_TASK and (not lines or lines[-1].number >= task.last_line)
        return Response({
            "task_run": task.pk, "status": task.status, "last_line": task.last_line, "complete": complete,
            "lines": serializers.TaskLogSerializer(lines, many=True).data,
        })


class ProjectConfigViewSet(ScopedModelViewSet):
    """Project configs read by ${{ configs.<key> }}; secret values are write-only."""

    model = ProjectConfig
    serializer_class = serializers.ProjectConfigSerializer
    filterset_class = filtersets.ProjectConfigFilterSet
    select_related = ("project__organization",)

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.set_config(self.request.user, data["project"], key=data["key"],
                                                  value=data["value"], secret=data.get("secret", False))

    def perform_update(self, serializer):
        obj = serializer.instance
        data = serializer.validated_data
        if data.get("key", obj.key) != obj.key or data.get("project", obj.project) != obj.project:
            raise ValidationError({"key": "the key and project of a config cannot change"})
        if "value" not in data and data.get("secret", obj.secret) != obj.secret:
            raise ValidationError({"value": "give the value again when changing `secret`"})
        value = data["value"] if "value" in data else obj.plain_value()
        serializer.instance = services.set_config(self.request.user, obj.project, key=obj.key, value=value,
                                                  secret=data.get("secret", obj.secret))

    def perform_destroy(self, instance):
        services.delete_config(self.request.user, instance)


class BranchRuleViewSet(ScopedModelViewSet):
    """Branch pattern -> workspace rules of the projects in scope (push-triggered runs)."""

    model = BranchRule
    serializer_class = serializers.BranchRuleSerializer
    filterset_class = filtersets.BranchRuleFilterSet
    select_related = ("project__organization",)

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.save_branch_rule(
            self.request.user, data["project"], pattern=data["pattern"], workspace=data["workspace"],
            priority=data.get("priority", 100))

    def perform_update(self, serializer):
        obj = serializer.instance
        data = serializer.validated_data
        serializer.instance = services.save_branch_rule(
            self.request.user, obj.project, pattern=data.get("pattern", obj.pattern),
            workspace=data.get("workspace", obj.workspace), priority=data.get("priority", obj.priority), rule=obj)

    def perform_destroy(self, instance):
        services.delete_branch_rule(self.request.user, instance)


@extend_schema(request=None, responses={200: dict, 403: dict}, auth=[])
@api_view(["POST"])
@authentication_classes([])
@permission_classes([permissions.AllowAny])
def webhook(request, provider: str, app_id: int):
    """A git push from GitHub, GitLab or Gitea: checked against the project's webhook_secret (a bad
    signature is 403 and changes nothing), then matched against each definition's `on.push`."""
    if provider not in triggers.PROVIDERS:
        raise Http404("unknown provider")
    application = Application.objects.filter(pk=app_id).select_related("project").first()
    if application is None:
        raise Http404("no such application")
    body = request.body
    try:
        triggers.verify(provider, triggers.webhook_secret(application.project_id), request.headers, body)
    except triggers.BadSignature as exc:
        return Response({"detail": f"bad signature: {exc}"}, status=status.HTTP_403_FORBIDDEN)
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        return Response({"detail": "the body is not JSON"}, status=status.HTTP_400_BAD_REQUEST)
    push = triggers.push_event(provider, request.headers, payload if isinstance(payload, dict) else {})
    if push is None:
        return Response({"runs": [], "notes": ["not a push event: ignored"]})
    with transaction.atomic():
        runs, notes = triggers.runs_for_push(application, push)
    return Response({"runs": [run.pk for run in runs], "notes": notes},
                    status=status.HTTP_202_ACCEPTED if runs else status.HTTP_200_OK)
