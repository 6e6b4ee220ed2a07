"""URL root: pages, the admin, the API and its schema."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerSplitView

from apps.projects import views as project_views
from dice_console import health
from dice_console.schema import CachedSchemaView
from dice_console.security import off_request_thread

urlpatterns = [
    path("", project_views.home, name="home"),
    path("login/", off_request_thread(auth_views.LoginView.as_view(template_name="registration/login.html")),
         name="login"),
    path("logout/", project_views.SignOutView.as_view(), name="logout"),
    path("invite/<str:key>/", project_views.accept_invitation, name="invitation"),
    path("healthz/", health.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/schema/", CachedSchemaView.as_view(), name="api-schema"),
    # The split view serves its script from ?script, so the page passes the Content-Security-Policy.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("dice_console.api_urls")),
    path("", include("apps.deploy.urls")),
    path("", include("apps.pipelines.urls")),
    path("", include("apps.logs.urls")),
    path("", include("apps.clusters.urls")),
    path("", include("apps.cmdb.urls")),
    path("", include("apps.monitoring.urls")),
    path("", include("apps.projects.urls")),
]

handler404 = "dice_console.api.not_found"
handler500 = "dice_console.api.server_error"
