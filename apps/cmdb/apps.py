"""App config of the cmdb app."""

from django.apps import AppConfig


class CmdbConfig(AppConfig):
    name = "apps.cmdb"
    label = "cmdb"
    verbose_name = "Cmdb"
