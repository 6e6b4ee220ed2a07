"""App config of the clusters app."""

from django.apps import AppConfig


class ClustersConfig(AppConfig):
    name = "apps.clusters"
    label = "clusters"
    verbose_name = "Clusters"

    def ready(self):
        from apps.clusters import crypto, scope
        from scheduler.local import sealed

        scope.register()
        # The local cluster's state files keep environments sealed with the console's key.
        sealed.use_key(crypto.fernet_keys)
