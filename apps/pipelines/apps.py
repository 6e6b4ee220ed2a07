"""App config of the pipelines app."""

from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    name = "apps.pipelines"
    label = "pipelines"
    verbose_name = "Pipelines"

    def ready(self):
        from apps.pipelines import monitor, notify, scope, signals

        scope.register()
        signals.connect()
        notify.plug(monitor.address, monitor.watch)  # the engine's steps report to this process's monitor
