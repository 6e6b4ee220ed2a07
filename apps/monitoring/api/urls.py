"""API routes of notifications, included into /api/ by dice_console/api_urls.py."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from apps.monitoring import metrics_views
from apps.monitoring.api import views

router = SimpleRouter()
router.register("notifications/channels", views.ChannelViewSet, basename="notification-channel")
router.register("notifications/deliveries", views.DeliveryViewSet, basename="notification-delivery")
router.register("alerts/rules", views.AlertRuleViewSet, basename="alert-rule")

urlpatterns = [
    path("metrics/runtimes/<int:pk>/", metrics_views.RuntimeSeriesView.as_view(), name="runtime-metrics"),
    path("", include(router.urls)),
]
