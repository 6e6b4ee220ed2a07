"""Pages of the CMDB: search across kinds, an item with its relations graph and history, reports."""

from __future__ import annotations

from django.shortcuts import render
from django.views import View

from apps.cmdb import services
from apps.cmdb.choices import ItemKind, RelationKind
from apps.cmdb.filtersets import ItemFilterSet
from apps.cmdb.graph import layout
from apps.cmdb.models import Change, ConfigurationItem, Relation
from apps.cmdb.tables import ChangeTable, ItemTable
from apps.projects import scope
from dice_console.views import ObjectListView, ScopedMixin, get_scoped_or_404


class ItemListView(ObjectListView):
    model = ConfigurationItem
    table_class = ItemTable
    filterset_class = ItemFilterSet
    title = "CMDB"
    template_name = "cmdb/item_list.html"

    def get_queryset(self):
        return super().get_queryset().select_related("cluster")

    def extra_context(self):
        from apps.clusters.models import Cluster

        return {"kinds": ItemKind.choices, "clusters": Cluster.objects.values_list("name", flat=True)}


class ItemView(ScopedMixin, View):
    model = ConfigurationItem

    def get(self, request, pk):
        item = get_scoped_or_404(self.scoped_queryset().select_related("cluster", "organization"), pk=pk)
        visible = scope.scoped(request.user, Relation)
        outgoing = list(visible.filter(source=item).select_related("target"))
        incoming = list(visible.filter(target=item).select_related("source"))
        history = item.changes.all()[:50]
        return render(request, "cmdb/item.html", {
            "object": item, "outgoing": outgoing, "incoming": incoming, "graph": layout(item, outgoing, incoming),
            "history": history,
        })


class ReportsView(ScopedMixin, View):
    """What runs on node X; which runtimes use addon Y; what changed in the last 24 hours."""

    model = ConfigurationItem

    def get(self, request):
        items = self.scoped_queryset()
        nodes = items.filter(kind__in=[ItemKind.NODE, ItemKind.HOST], present=True).select_related("cluster")
        addons = items.filter(kind=ItemKind.ADDON)
        node = addon = None
        running = using = None
        if request.GET.get("node"):
            node = nodes.filter(pk=request.GET["node"]).first()
            if node:
                running = services.running_on(items, node).select_related("cluster").order_by("kind", "name")
        if request.GET.get("addon"):
            addon = addons.filter(pk=request.GET["addon"]).first()
            if addon:
                using = services.using_addon(items.filter(kind=ItemKind.RUNTIME), addon).order_by("name")
        hours = float(request.GET.get("hours") or 24)
        changes = services.changes_since(scope.scoped(request.user, Change), hours).select_related("item")
        return render(request, "cmdb/reports.html", {
            "nodes": nodes, "addons": addons, "node": node, "addon": addon, "running": running, "using": using,
            "changes": ChangeTable(changes[:200], orderable=False), "hours": hours, "relation": RelationKind,
        })
