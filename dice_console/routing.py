"""WebSocket routes of every app, in one list for the ASGI router."""

from django.urls import path

from apps.deploy.consumers import RuntimeProgressConsumer
from apps.logs.consumers import LogsConsumer
from apps.monitoring.consumers import ClusterUsageConsumer
from apps.pipelines.consumers import PipelineRunConsumer
from dice_console.consumers import EventsConsumer

websocket_urlpatterns = [
    path("ws/events/", EventsConsumer.as_asgi()),
    path("ws/runtimes/<int:runtime_id>/", RuntimeProgressConsumer.as_asgi()),
    path("ws/logs/", LogsConsumer.as_asgi()),
    path("ws/clusters/<int:cluster_id>/usage/", ClusterUsageConsumer.as_asgi()),
    path("ws/runs/<int:run_id>/", PipelineRunConsumer.as_asgi()),
]
