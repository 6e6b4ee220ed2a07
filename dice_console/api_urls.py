"""The REST API root: every app's viewsets on one router under /api/."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from apps.pipelines import context_store
from apps.projects.api import views as projects_api
from dice_console.api_root import api_root

router = DefaultRouter()
router.include_root_view = False  # dice_console.api_root lists every endpoint, not only this router's
router.register("orgs", projects_api.OrganizationViewSet, basename="organization")
router.register("projects", projects_api.ProjectViewSet, basename="project")
router.register("applications", projects_api.ApplicationViewSet, basename="application")
router.register("workspaces", projects_api.WorkspaceViewSet, basename="workspace")
router.register("members", projects_api.MemberViewSet, basename="member")
router.register("tokens", projects_api.ApiTokenViewSet, basename="token")
router.register("audit-events", projects_api.AuditEventViewSet, basename="auditevent")
router.register("users", projects_api.UserViewSet, basename="user")
router.register("invitations", projects_api.InvitationViewSet, basename="invitation")

app_name = "api"

urlpatterns = [
    path("", api_root, name="api-root"),
    path("me/", projects_api.me, name="me"),
    path("permissions/", projects_api.permission_table, name="permissions"),
    path("", include("apps.deploy.api.urls")),
    path("", include("apps.pipelines.api.urls")),
    # for the agent in a step's pod, authenticated by the run's context token (not the user API's auth)
    path("pipeline-context/<int:run_id>/dirs/<str:alias>/", context_store.step_dir_view, name="pipeline-context-dir"),
    path("pipeline-context/<int:run_id>/caches/", context_store.cache_view, name="pipeline-context-cache"),
    path("", include("apps.logs.api_urls")),
    path("", include("apps.clusters.api.urls")),
    path("", include("apps.cmdb.api.urls")),
    path("", include("apps.monitoring.api.urls")),
    path("", include(router.urls)),
]
