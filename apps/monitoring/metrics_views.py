"""Metrics over HTTP: JSON series under /api/metrics/, Prometheus text at /metrics (the console
itself: staff only) and /metrics/runtimes/[ID/] (the runtimes the caller may view). Both take the
API's authentication (a Bearer token for a scraper, or the session)."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.deploy.models import Runtime
from apps.monitoring import metrics, prometheus
from apps.monitoring.models import RuntimeHealth
from apps.projects import scope


def _runtime(user, pk) -> Runtime:
    found = scope.scoped(user, Runtime).select_related(
        "application__project__organization", "workspace", "cluster").filter(pk=pk).first()
    if found is None:
        raise NotFound("no runtime with this id that you can see")
    return found


class _Text(APIView):
    # A schema-less endpoint: it answers text/plain for Prometheus.
    schema = None

    def text(self, body: str) -> HttpResponse:
        return HttpResponse(body, content_type=prometheus.CONTENT_TYPE)


class ConsoleMetricsView(_Text):
    """Prometheus text of the console's own process and what it manages (staff only)."""

    def get(self, request):
        if not (request.user.is_staff or request.user.is_superuser):
            raise PermissionDenied("the console's own metrics are for staff; runtimes' are at /metrics/runtimes/")
        return self.text(prometheus.console_text())


class RuntimeMetricsView(_Text):
    """Prometheus text of one runtime, or of every runtime the caller may view."""

    def get(self, request, pk: int | None = None):
        runtimes = [_runtime(request.user, pk)] if pk is not None else list(scope.scoped(request.user, Runtime))
        return self.text(prometheus.runtimes_text(metrics.latest(runtimes)))


class PointSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    cpu_millicores = serializers.FloatField(allow_null=True)
    memory_bytes = serializers.IntegerField(allow_null=True)
    restarts = serializers.IntegerField()
    replicas = serializers.IntegerField()
    ready = serializers.IntegerField()
    connections = serializers.IntegerField(allow_null=True, help_text="Front proxy counter (local)")
    replies = serializers.IntegerField(allow_null=True)
    first_byte_seconds = serializers.FloatField(allow_null=True)


class RuntimeSeriesSerializer(serializers.Serializer):
    runtime = serializers.IntegerField()
    window = serializers.CharField()
    available = serializers.BooleanField(allow_null=True)
    reason = serializers.CharField()
    health = serializers.CharField()
    services = serializers.DictField(child=PointSerializer(many=True))
    replicas = serializers.ListField(child=serializers.DictField())


class RuntimeSeriesView(APIView):
    """A runtime's metrics: per service over the window (`1h`: raw samples, `1d`: five-minute
    averages), and each replica's latest sample."""

    @extend_schema(parameters=[OpenApiParameter("window", str, enum=list(metrics.WINDOWS))],
                   responses=RuntimeSeriesSerializer)
    def get(self, request, pk: int):
        runtime = _runtime(request.user, pk)
        window = request.query_params.get("window", "1h")
        if window not in metrics.WINDOWS:
            raise ValidationError({"window": [f"one of {', '.join(metrics.WINDOWS)}"]})
        seen = RuntimeHealth.objects.filter(runtime=runtime).first()
        latest = [s for s in metrics.latest([runtime]) if s.replica]
        return Response({
            "runtime": runtime.pk, "window": window,
            "available": seen.metrics_available if seen else None,
            "reason": seen.metrics_reason if seen else "not collected yet",
            "health": seen.health if seen else "",
            "services": metrics.series(runtime, window),
            "replicas": [{"service": s.service, "replica": s.replica, "at": s.at, "cpu_millicores": s.cpu_millicores,
                          "memory_bytes": s.memory_bytes, "restarts": s.restarts, "ready": bool(s.ready)}
                         for s in latest],
        })
