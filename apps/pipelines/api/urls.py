"""API routes of the pipelines app, included into /api/ by dice_console/api_urls.py."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from apps.pipelines.api import views

router = SimpleRouter()
router.register("pipelines", views.PipelineDefinitionViewSet, basename="pipeline")
router.register("pipeline-runs", views.PipelineRunViewSet, basename="pipelinerun")
router.register("task-runs", views.TaskRunViewSet, basename="taskrun")
router.register("project-configs", views.ProjectConfigViewSet, basename="projectconfig")
router.register("branch-rules", views.BranchRuleViewSet, basename="branchrule")

urlpatterns = [
    path("webhooks/<str:provider>/<int:app_id>/", views.webhook, name="pipeline-webhook"),
    path("applications/<int:app_id>/repository/", views.repository, name="application-repository"),
    path("applications/<int:app_id>/previews/", views.previews, name="application-previews"),
    path("", include(router.urls)),
]
