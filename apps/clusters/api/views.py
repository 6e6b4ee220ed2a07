"""Viewsets of the clusters API: clusters (global; changes need manage_clusters), their check, nodes,
node labels and inspection, and the resource report."""

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import action, api_view
from rest_framework.exceptions import NotFound
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.response import Response

from apps.clusters import services
from apps.clusters.api import serializers
from apps.clusters.filtersets import ClusterFilterSet, NodeFilterSet
from apps.clusters.inspection import inspect_cluster, visible_findings
from apps.clusters.models import Cluster
from apps.clusters.reports import resource_report
from apps.projects import scope
from apps.projects.models import Workspace
from dice_console.api import ScopedModelViewSet
from dice_console.api_input import digits

_CREDS = ("kubeconfig", "context", "server", "ca", "token")


class ClusterViewSet(ScopedModelViewSet):
    """Every authenticated user can list clusters; registering, changing and deleting need manage_clusters."""

    model = Cluster
    serializer_class = serializers.ClusterSerializer
    filterset_class = ClusterFilterSet
    select_related = ("organization",)
    prefetch_related = ("overcommits", "granted_to")
    lookup_field = "name"
    lookup_value_regex = "[-a-zA-Z0-9_]+"

    def get_object(self):
        value = self.kwargs[self.lookup_field]
        qs = self.get_queryset()
        obj = (qs.filter(pk=int(value)) if digits(value) else qs.filter(name=value)).first()
        if obj is None:
            raise NotFound(f"no cluster {value}")
        self.check_object_permissions(self.request, obj)
        return obj

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        creds = {k: data.pop(k) or None for k in _CREDS if k in data}
        overcommit = data.pop("overcommit_input", None)
        serializer.instance = services.register_cluster(self.request.user, overcommit=overcommit, **creds, **data)

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        creds = {k: data.pop(k) for k in _CREDS if k in data and data[k]}
        overcommit = data.pop("overcommit_input", None)
        serializer.instance = services.update_cluster(
            self.request.user, serializer.instance, overcommit=overcommit, **creds, **data)

    def perform_destroy(self, instance):
        services.delete_cluster(self.request.user, instance)

    @extend_schema(request=None, responses={200: dict})
    @action(detail=True, methods=["post"])
    def check(self, request, **kwargs):
        """Run the connectivity check now: server version, permissions, operators."""
        cluster = self.get_object()
        return Response(services.run_check(cluster, request.user))

    @extend_schema(request=None, responses={200: dict})
    @action(detail=True, methods=["post"])
    def sync(self, request, **kwargs):
        """Sync nodes, namespaces and the CMDB now."""
        from apps.clusters.sync import sync_cluster

        cluster = self.get_object()
        services.require_manage(request.user, cluster)
        try:
            return Response(sync_cluster(cluster))
        except Exception as exc:
            raise ValidationError({"detail": f"sync failed: {exc}"}) from None

    @extend_schema(responses={200: serializers.NodeSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def nodes(self, request, **kwargs):
        """The cluster's nodes as the last sync recorded them."""
        cluster = self.get_object()
        nodes = NodeFilterSet(request.GET, queryset=scope.scoped(request.user, cluster.nodes.model)
                              .filter(cluster=cluster).select_related("cluster").order_by("name", "pk"))
        if not nodes.is_valid():
            raise DRFValidationError(nodes.errors)
        page = self.paginate_queryset(nodes.qs)
        return self.get_paginated_response(serializers.NodeSerializer(page, many=True).data)

    @extend_schema(request=serializers.NodeLabelsSerializer, responses={200: serializers.NodeSerializer})
    @action(detail=True, methods=["put", "patch"], url_path=r"nodes/(?P<node>[^/]+)/labels")
    def node_labels(self, request, node=None, **kwargs):
        """Set the node's dice/ labels (exactly the given list); patches the Kubernetes node."""
        cluster = self.get_object()
        obj = cluster.nodes.filter(name=node).first()
        if obj is None:
            raise NotFound(f"no node {node} in {cluster}")
        body = serializers.NodeLabelsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.set_node_roles(request.user, obj, body.validated_data["labels"])
        return Response(serializers.NodeSerializer(obj).data)

    @extend_schema(methods=["GET"], responses={200: serializers.InspectionSerializer})
    @extend_schema(methods=["POST"], request=None, responses={201: serializers.InspectionSerializer})
    @action(detail=True, methods=["get", "post"])
    def inspection(self, request, **kwargs):
        """GET: the last inspection (findings you may see); POST: inspect now (manage_clusters)."""
        cluster = self.get_object()
        if request.method == "POST":
            services.require_manage(request.user, cluster)
            report = inspect_cluster(cluster)
        else:
            report = cluster.inspections.first()
            if report is None:
                return Response({"cluster": cluster.name, "id": None, "created": None, "error": "",
                                 "findings": [], "counts": {}})
        return Response({"cluster": cluster.name, "id": report.pk, "created": report.created, "error": report.error,
                         "counts": report.counts, "findings": visible_findings(request.user, report)},
                        status=status.HTTP_201_CREATED if request.method == "POST" else status.HTTP_200_OK)


@extend_schema(
    parameters=[OpenApiParameter("project", str, description="project id or ORG/PROJECT"),
                OpenApiParameter("cluster", str), OpenApiParameter("workspace", str)],
    responses={200: dict},
)
@api_view(["GET"])
def resource_report_view(request):
    """Quota, requested (after overcommit), limits, allocatable and savings per project workspace."""
    workspaces = scope.scoped(request.user, Workspace)
    project = request.query_params.get("project", "")
    if digits(project):
        workspaces = workspaces.filter(project_id=int(project))
    elif "/" in project:
        org, slug = project.split("/", 1)
        workspaces = workspaces.filter(project__organization__slug=org, project__slug=slug)
    elif project:
        workspaces = workspaces.filter(project__slug=project)
    if request.query_params.get("cluster"):
        workspaces = workspaces.filter(cluster__name=request.query_params["cluster"])
    if request.query_params.get("workspace"):
        workspaces = workspaces.filter(kind=request.query_params["workspace"].upper())
    rows = resource_report(workspaces.order_by("project__organization__slug", "project__slug", "kind")[:1000])
    return Response({"count": len(rows), "results": rows})
