"""App config of the monitoring app: registers its tenant scope and the hooks that notify."""

from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "apps.monitoring"
    label = "monitoring"
    verbose_name = "Monitoring"

    def ready(self):
        from apps.monitoring import hooks, scope

        scope.register()
        hooks.connect()
