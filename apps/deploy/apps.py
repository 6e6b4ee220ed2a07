"""App config of the deploy app."""

from django.apps import AppConfig


class DeployConfig(AppConfig):
    name = "apps.deploy"
    label = "deploy"
    verbose_name = "Deploy"

    def ready(self):
        from apps.deploy import scope, signals, tasks  # noqa: F401 - tasks: sent by name at worker start

        scope.register()
        signals.connect()
