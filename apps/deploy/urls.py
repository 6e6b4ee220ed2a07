"""Page URLs of the deploy app (under an application's URL): releases and runtimes."""

from django.urls import path

from apps.deploy import runtime_views, variable_views, views

app_name = "deploy"

_APP = "orgs/<slug:org>/<slug:project>/<slug:app>/releases/"
_RUNTIMES = "orgs/<slug:org>/<slug:project>/<slug:app>/runtimes/"
_VARIABLES = "orgs/<slug:org>/<slug:project>/<slug:app>/variables/"
_RT = _RUNTIMES + "<str:workspace>/<slug:name>/"


def _action(name):
    return path(f"{_RT}{name}/", runtime_views.RuntimeActionView.as_view(action=name), name=f"runtime_{name}")


urlpatterns = [
    path("deployments/", runtime_views.DeploymentListView.as_view(), name="all_deployments"),
    path(_APP, views.ReleaseListView.as_view(), name="releases"),
    path(f"{_APP}new/", views.ReleaseCreateView.as_view(), name="release_add"),
    path(f"{_APP}validate/", views.ReleaseValidateView.as_view(), name="release_validate"),
    path(f"{_APP}<int:version>/", views.ReleaseView.as_view(), name="release"),
    path(f"{_APP}<int:version>/compare/", views.ReleaseCompareView.as_view(), name="release_compare"),
    path(f"{_APP}<int:version>/deploy/", runtime_views.ReleaseDeployView.as_view(), name="release_deploy"),
    path(_RUNTIMES, runtime_views.RuntimeListView.as_view(), name="runtimes"),
    path(_VARIABLES, variable_views.VariablesView.as_view(), name="variables_dev"),
    path(f"{_VARIABLES}<str:workspace>/", variable_views.VariablesView.as_view(), name="variables"),
    path(_RT, runtime_views.RuntimeView.as_view(), name="runtime"),
    path(f"{_RT}live/", runtime_views.RuntimeLiveView.as_view(), name="runtime_live"),
    path(f"{_RT}drift/", runtime_views.RuntimeDriftView.as_view(), name="runtime_drift"),
    path(f"{_RT}jobs/<str:job>/log/", runtime_views.RuntimeJobLogView.as_view(), name="runtime_job_log"),
    path(f"{_RT}delete/", runtime_views.RuntimeDeleteView.as_view(), name="runtime_delete"),
    _action("scale"),
    _action("restart"),
    _action("stop"),
    _action("rollback"),
    _action("cancel"),
    _action("cancel-job"),
    _action("addon-values"),
    _action("sync"),
]
