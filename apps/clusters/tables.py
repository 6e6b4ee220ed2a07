"""Tables of the cluster pages."""

import django_tables2 as tables

from apps.clusters.models import Cluster
from dice_console.columns import WhenColumn


class ClusterTable(tables.Table):
    name = tables.Column(linkify=True, verbose_name="Cluster")
    check_status = tables.TemplateColumn(
        '<span class="check-{{ record.check_status }}">{{ record.get_check_status_display }}</span>',
        verbose_name="Check")
    nodes = tables.Column(accessor="node_count", verbose_name="Nodes", orderable=False)
    organization = tables.Column(verbose_name="Owner", default="platform-wide")
    kind = tables.Column(verbose_name="Kind")
    api_server = tables.Column(verbose_name="API server", default="—")
    server_version = tables.Column(verbose_name="Version", default="—")
    wildcard_domain = tables.Column(verbose_name="Wildcard domain", default="—")
    synced_at = WhenColumn(verbose_name="Last sync", default="never")

    class Meta:
        model = Cluster
        fields = ("name", "kind", "api_server", "server_version", "wildcard_domain", "check_status", "synced_at")
        sequence = ("name", "organization", "kind", "api_server", "server_version", "nodes", "wildcard_domain", "check_status",
                    "synced_at")
