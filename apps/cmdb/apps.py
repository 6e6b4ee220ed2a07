"""App config of the cmdb app."""

from django.apps import AppConfig


class CmdbConfig(AppConfig):
    name = "apps.cmdb"
    label = "cmdb"
    verbose_name = "CMDB"

    def ready(self):
        from apps.cmdb import scope

        scope.register()
