"""Tables of the CMDB pages."""

import django_tables2 as tables

from apps.cmdb.models import Change, ConfigurationItem
from dice_console.columns import WhenColumn


class ItemTable(tables.Table):
    name = tables.Column(linkify=True)
    cluster = tables.Column(accessor="cluster__name", verbose_name="Cluster")
    present = tables.BooleanColumn(verbose_name="Present")
    key = tables.Column(verbose_name="Key")
    org_slug = tables.Column(verbose_name="Organization", default="—")
    changed = WhenColumn(verbose_name="Changed")
    last_seen = WhenColumn(verbose_name="Last seen")

    class Meta:
        model = ConfigurationItem
        fields = ("name", "kind", "key", "cluster", "org_slug", "present", "changed", "last_seen")


class ChangeTable(tables.Table):
    item = tables.Column(linkify=lambda record: record.item.get_absolute_url())
    diff = tables.TemplateColumn(template_name="cmdb/_diff.html", orderable=False, verbose_name="Changes")
    created = WhenColumn(verbose_name="When")

    class Meta:
        model = Change
        fields = ("created", "item", "action", "source", "diff")
