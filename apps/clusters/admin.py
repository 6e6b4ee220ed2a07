"""Django admin for clusters."""

from django.contrib import admin

from apps.clusters.models import Cluster
from dice_console.admin import AuditedAdmin


@admin.register(Cluster)
class ClusterAdmin(AuditedAdmin):
    list_display = ("name", "kind", "api_server", "wildcard_domain", "created")
    list_filter = ("kind",)
    search_fields = ("name", "description")
