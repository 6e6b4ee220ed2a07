"""Viewsets of the CMDB API (read-only: items are written by the sync and the deploy code)."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.cmdb.api import serializers
from apps.cmdb.choices import RelationKind
from apps.cmdb.filtersets import ChangeFilterSet, ItemFilterSet
from apps.cmdb.models import Change, ConfigurationItem, Relation
from apps.projects import scope
from dice_console.api import ScopedGenericViewSet


class ItemViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedGenericViewSet):
    """Configuration items you may see; `?q=`, `?kind=`, `?cluster=` filter across kinds."""

    model = ConfigurationItem
    serializer_class = serializers.ItemSerializer
    filterset_class = ItemFilterSet
    select_related = ("cluster", "organization")

    def retrieve(self, request, *args, **kwargs):
        item = self.get_object()
        data = self.get_serializer(item).data
        visible = scope.scoped(request.user, Relation).select_related("source", "target")
        data["relations"] = serializers.RelationSerializer(
            visible.filter(source=item) | visible.filter(target=item), many=True).data
        return Response(data)

    @extend_schema(responses={200: serializers.ChangeSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def history(self, request, pk=None):
        """The item's changes, newest first."""
        item = self.get_object()
        page = self.paginate_queryset(item.changes.select_related("item"))
        return self.get_paginated_response(serializers.ChangeSerializer(page, many=True).data)

    @extend_schema(
        parameters=[OpenApiParameter("relation", str, enum=RelationKind.values),
                    OpenApiParameter("direction", str, enum=["in", "out"])],
        responses={200: serializers.ItemSerializer(many=True)},
    )
    @action(detail=True, methods=["get"])
    def related(self, request, pk=None):
        """Items related to this one: `?relation=runs-on&direction=in` is what runs on a node;
        `?relation=uses-addon&direction=in` the runtimes that use an addon."""
        item = self.get_object()
        items = self.get_queryset()
        rel = request.query_params.get("relation", RelationKind.RUNS_ON)
        if request.query_params.get("direction", "in") == "in":
            qs = items.filter(relations_out__kind=rel, relations_out__target=item)
        else:
            qs = items.filter(relations_in__kind=rel, relations_in__source=item)
        page = self.paginate_queryset(qs.distinct())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class ChangeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedGenericViewSet):
    """Changes of the items you may see; `?hours=24` is "what changed in the last 24 hours"."""

    model = Change
    serializer_class = serializers.ChangeSerializer
    filterset_class = ChangeFilterSet
    select_related = ("item",)


