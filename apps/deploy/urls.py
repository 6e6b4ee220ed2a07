"""Page URLs of the deploy app (under an application's URL)."""

from django.urls import path

from apps.deploy import views

app_name = "deploy"

_APP = "orgs/<slug:org>/<slug:project>/<slug:app>/releases/"

urlpatterns = [
    path(_APP, views.ReleaseListView.as_view(), name="releases"),
    path(f"{_APP}new/", views.ReleaseCreateView.as_view(), name="release_add"),
    path(f"{_APP}validate/", views.ReleaseValidateView.as_view(), name="release_validate"),
    path(f"{_APP}<int:version>/", views.ReleaseView.as_view(), name="release"),
    path(f"{_APP}<int:version>/compare/", views.ReleaseCompareView.as_view(), name="release_compare"),
]
