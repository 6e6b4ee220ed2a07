"""API routes of notifications, included into /api/ by dice_console/api_urls.py."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from apps.monitoring.api import views

router = SimpleRouter()
router.register("notifications/channels", views.ChannelViewSet, basename="notification-channel")
router.register("notifications/deliveries", views.DeliveryViewSet, basename="notification-delivery")

urlpatterns = [path("", include(router.urls))]
