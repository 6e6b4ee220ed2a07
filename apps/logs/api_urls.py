"""API routes of the logs app, included into /api/ (API tokens or the session)."""

from django.urls import path

from apps.logs import views

urlpatterns = [
    path("logs/tasks/<int:task_id>/raw/", views.task_log_raw, name="log-task-raw"),
    path("logs/runtimes/<int:runtime_id>/<str:service>/", views.runtime_log_lines, name="log-runtime-lines"),
    path("logs/runtimes/<int:runtime_id>/<str:service>/raw/", views.runtime_log_raw, name="log-runtime-raw"),
]
