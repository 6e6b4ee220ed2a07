"""Page URLs of monitoring."""

from django.urls import path

from apps.monitoring import views

app_name = "monitoring"

urlpatterns = [
    path("orgs/<slug:org>/<slug:project>/notifications/", views.NotificationsView.as_view(), name="notifications"),
]
