"""App config of the clusters app."""

from django.apps import AppConfig


class ClustersConfig(AppConfig):
    name = "apps.clusters"
    label = "clusters"
    verbose_name = "Clusters"

    def ready(self):
        from apps.clusters import scope

        scope.register()
