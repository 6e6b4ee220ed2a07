"""API routes of the deploy app, included into /api/ by dice_console/api_urls.py."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from apps.deploy.api import views

router = SimpleRouter()
router.register("releases", views.ReleaseViewSet, basename="release")

urlpatterns = [
    path("spec/validate/", views.validate_spec, name="spec-validate"),
    path("spec/schema/", views.spec_schema, name="spec-schema"),
    path("", include(router.urls)),
]
