"""Page URLs of the pipelines app (under an application's URL)."""

from django.urls import path, re_path

from apps.pipelines import definition_views, git_http, settings_views, views

app_name = "pipelines"

_APP = "orgs/<slug:org>/<slug:project>/<slug:app>/pipelines/"

urlpatterns = [
    path("pipelines/", views.RunListView.as_view(), name="all_runs"),
    path("orgs/<slug:org>/<slug:project>/settings/", settings_views.ProjectSettingsView.as_view(),
         name="project_settings"),
    path(_APP, views.PipelineListView.as_view(), name="list"),
    path(f"{_APP}definitions/new/", definition_views.DefinitionEditView.as_view(), name="definition_add"),
    path(f"{_APP}definitions/validate/", definition_views.DefinitionValidateView.as_view(), name="definition_validate"),
    path(f"{_APP}definitions/<int:pk>/", definition_views.DefinitionEditView.as_view(), name="definition"),
    path(f"{_APP}definitions/<int:pk>/delete/", definition_views.DefinitionDeleteView.as_view(),
         name="definition_delete"),
    path(f"{_APP}runs/<int:run_id>/", views.RunView.as_view(), name="run"),
    path(f"{_APP}runs/<int:run_id>/<str:verb>/", views.RunActionView.as_view(), name="run_action"),
    path(f"{_APP}tasks/<int:task_id>/log/", views.TaskLogView.as_view(), name="task_log"),
    # hosted repositories, as git clients address them
    re_path(r"^git/(?P<org>[-\w]+)/(?P<project>[-\w]+)/(?P<app>[-\w]+)\.git/(?P<rest>info/refs|git-upload-pack|git-receive-pack)$",
            git_http.git_http, name="git"),
]
