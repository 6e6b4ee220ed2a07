"""App config of the pipelines app."""

from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    name = "apps.pipelines"
    label = "pipelines"
    verbose_name = "Pipelines"

    def ready(self):
        # tasks: registers the Celery tasks that apps.pipelines.queue sends by name, in every
        # process (a web process sends them too, and Celery's autodiscovery runs only in workers)
        from apps.pipelines import monitor, notify, scope, signals, tasks  # noqa: F401

        scope.register()
        signals.connect()
        notify.plug(monitor.address, monitor.watch)  # the engine's steps report to this process's monitor
