"""API routes of the clusters app, included into /api/ by dice_console/api_urls.py."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from apps.clusters.api import views

router = SimpleRouter()
router.register("clusters", views.ClusterViewSet, basename="cluster")

urlpatterns = [
    path("reports/resources/", views.resource_report_view, name="resource-report"),
    path("", include(router.urls)),
]
