"""App config of the logs app: chunked log storage, live delivery over WebSocket, the viewer."""

from django.apps import AppConfig


class LogsConfig(AppConfig):
    name = "apps.logs"
    label = "logs"
    verbose_name = "Logs"

    def ready(self):
        from apps.logs import push

        push.connect()
