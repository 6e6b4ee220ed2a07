"""API routes of the CMDB, included into /api/ by dice_console/api_urls.py."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from apps.cmdb.api import views

router = SimpleRouter()
router.register("cmdb/items", views.ItemViewSet, basename="cmdb-item")
router.register("cmdb/changes", views.ChangeViewSet, basename="cmdb-change")

urlpatterns = [path("", include(router.urls))]
