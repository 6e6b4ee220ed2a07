"""Page URLs of the logs app: the viewer and the raw downloads."""

from django.urls import path

from apps.logs import views

app_name = "logs"

urlpatterns = [
    path("logs/tasks/<int:task_id>/", views.task_log_page, name="task"),
    path("logs/tasks/<int:task_id>/raw/", views.task_log_raw, name="task_raw"),
    path("logs/runtimes/<int:runtime_id>/<str:service>/", views.runtime_log_page, name="runtime"),
    path("logs/runtimes/<int:runtime_id>/<str:service>/raw/", views.runtime_log_raw, name="runtime_raw"),
]
