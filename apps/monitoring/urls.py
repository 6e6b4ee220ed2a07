"""Page URLs of monitoring."""

from django.urls import path

from apps.monitoring import metrics_views, views

app_name = "monitoring"

urlpatterns = [
    path("metrics", metrics_views.ConsoleMetricsView.as_view(), name="console-metrics"),
    path("metrics/runtimes/", metrics_views.RuntimeMetricsView.as_view(), name="runtimes-metrics"),
    path("metrics/runtimes/<int:pk>/", metrics_views.RuntimeMetricsView.as_view(), name="runtime-metrics"),
    path("runtimes/<int:pk>/graphs/", views.RuntimeGraphsView.as_view(), name="runtime_graphs"),
    path("clusters/<str:name>/usage/", views.ClusterUsageView.as_view(), name="cluster_usage"),
    path("orgs/<slug:org>/<slug:project>/notifications/", views.NotificationsView.as_view(), name="notifications"),
]
