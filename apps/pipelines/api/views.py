"""Viewsets of the pipelines API. Every change goes through apps.pipelines.services."""

from __future__ import annotations

import secrets

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, permissions, status
from rest_framework import serializers as drf
from rest_framework.decorators import (
    action,
    api_view,
    authentication_classes,
    parser_classes,
    permission_classes,
)
from rest_framework.response import Response

from apps.pipelines import filtersets, git_http, repos, services, triggers, webhooks
from apps.pipelines.api import serializers
from apps.pipelines.models import (
    BranchRule,
    PipelineDefinition,
    PipelineRun,
    PreviewEnvironment,
    ProjectConfig,
    TaskRun,
)
from apps.projects import scope
from apps.projects.models import Application
from dice_console.api import ScopedGenericViewSet, ScopedModelViewSet
from dice_console.api_input import INT64_MAX, digits

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

    @extend_schema(request=None, responses={201: serializers.PipelineRunSerializer})
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

    @extend_schema(
        parameters=[OpenApiParameter("after", OpenApiTypes.INT, description="give the lines numbered above this")],
        responses={200: serializers.TaskLogPageSerializer},
    )
    @action(detail=True, methods=["get"], pagination_class=None, filterset_class=None)
    def log(self, request, pk=None):
        """The persisted lines numbered above `after`, at most 1,000; `complete` once the step has
        finished and every line has been read."""
        task = self.get_object()
        after = request.query_params.get("after", "0")
        if not digits(after) or int(after) > INT64_MAX:
            raise ValidationError({"after": "a line number (0 or more)"})
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


_UNGUESSABLE = secrets.token_hex(32)
NOT_SIGNED = "the delivery is not signed with this application's webhook secret"


@extend_schema(
    request={"application/json": dict, "application/x-www-form-urlencoded": dict},
    responses={200: serializers.WebhookAnswerSerializer, 202: serializers.WebhookAnswerSerializer},
    auth=[],
)
@api_view(["POST"])
@authentication_classes([])
@permission_classes([permissions.AllowAny])
@parser_classes([])  # the raw body is what is signed: read it, never DRF's parsed data
def webhook(request, provider: str, app_id: int):
    """A delivery from GitHub, GitLab or Gitea (JSON, or GitHub's form-encoded `payload=`).

    An unknown application, one without a `webhook_secret` and a wrong signature are the same 403,
    and change nothing. A delivery id seen in the last day is a replay: 409, nothing starts. A push
    matching a definition's `on.push` starts it (workspace from the branch rules); a merge request
    into a branch `on.merge` lists starts it in DEV; a deleted branch starts nothing and removes its
    DEV/TEST runtime; GitHub's ping is answered. A signed body of an unexpected shape is a 400."""
    if provider not in webhooks.PROVIDERS:
        raise Http404("unknown provider")
    # Read from the stream: Django's 2.5 MiB limit on request.body is below what providers send.
    stream = request.stream
    body = stream.read(webhooks.MAX_BODY + 1) if stream is not None else b""
    if len(body) > webhooks.MAX_BODY:
        return Response({"detail": f"the body is larger than {webhooks.MAX_BODY // (1024 * 1024)} MiB"},
                        status=status.HTTP_400_BAD_REQUEST)
    application = Application.objects.filter(pk=app_id).select_related("project").first()
    secret = triggers.webhook_secret(application.project_id) if application is not None else None
    try:
        # The same work whether the application is unknown, has no secret or the signature is wrong.
        webhooks.verify(provider, secret or _UNGUESSABLE, request.headers, body)
        if not secret:
            raise webhooks.BadSignature("no secret")
    except webhooks.BadSignature:
        return Response({"detail": NOT_SIGNED}, status=status.HTTP_403_FORBIDDEN)
    try:
        payload = webhooks.read_body(request.headers, body)
        event = webhooks.parse_event(provider, request.headers, payload)
    except webhooks.BadDelivery as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
    delivery = webhooks.delivery_id(provider, request.headers)
    with transaction.atomic():
        if delivery and triggers.remember_delivery(application, provider, delivery) is None:
            return Response({"detail": f"delivery {delivery} was already received: nothing started"},
                            status=status.HTTP_409_CONFLICT)
        if event.kind == "push":
            runs, notes = triggers.runs_for_push(application, event)
        elif event.kind == "merge":
            runs, notes = triggers.runs_for_merge(application, event)
        elif event.kind in ("delete", "merge_end"):
            runs, notes = [], None
        else:
            runs, notes = [], [event.note]
    if notes is None:  # outside the transaction: removing a runtime talks to its cluster
        if event.kind == "delete":
            notes = triggers.teardown_for_deletion(application, event)
        else:
            notes = triggers.teardown_for_merge_end(application, event)
    return Response({"runs": [run.pk for run in runs], "notes": notes},
                    status=status.HTTP_202_ACCEPTED if runs else status.HTTP_200_OK)


webhook.cls.error_responses = ("409",)


@extend_schema(responses={200: dict})
@api_view(["GET"])
def repository(request, app_id: int):
    """The application's hosted repository: its clone URL, branches and recent commits (`view`)."""
    application = scope.applications_for(request.user).filter(pk=app_id).select_related(
        "project__organization").first()
    if application is None:
        raise Http404("no such application")
    return Response({
        "clone_url": git_http.clone_url(application, request),
        "exists": repos.exists(application.pk),
        "branches": [vars(b) for b in repos.branches(application.pk)],
        "commits": [vars(c) for c in repos.recent_commits(application.pk, count=20)],
    })


@extend_schema(responses={200: inline_serializer("PreviewEnvironment", many=True, fields={
    "number": drf.IntegerField(), "title": drf.CharField(), "branch": drf.CharField(),
    "runtime": drf.CharField(), "url": drf.CharField(), "run": drf.IntegerField(allow_null=True),
    "created": drf.DateTimeField(), "expires": drf.DateTimeField()})})
@api_view(["GET"])
def previews(request, app_id: int):
    """The application's preview environments: merge request, branch, URL, run, expiry (`view`)."""
    application = scope.applications_for(request.user).filter(pk=app_id).first()
    if application is None:
        raise Http404("no such application")
    return Response([
        {"number": p.number, "title": p.title, "branch": p.branch, "runtime": p.runtime_name, "url": p.url,
         "run": p.run_id, "created": p.created, "expires": p.expires}
        for p in PreviewEnvironment.objects.filter(application=application)])
