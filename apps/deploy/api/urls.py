"""API routes of the deploy app (releases, runtimes, deployments, environment variables, dice.yml tools), under /api/."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from apps.deploy.api import runtimes, variables, views

router = SimpleRouter()
router.register("releases", views.ReleaseViewSet, basename="release")
router.register("runtimes", runtimes.RuntimeViewSet, basename="runtime")
router.register("deployments", runtimes.DeploymentViewSet, basename="deployment")
router.register("variables", variables.VariableViewSet, basename="variable")

urlpatterns = [
    path("spec/validate/", views.validate_spec, name="spec-validate"),
    path("spec/schema/", views.spec_schema, name="spec-schema"),
    path("", include(router.urls)),
]
