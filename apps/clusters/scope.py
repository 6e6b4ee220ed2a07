"""The scope of the cluster models: clusters are global, every authenticated user may see them
(changing them needs manage_clusters, checked in services.py)."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.clusters.models import Cluster, InspectionReport, Node, WorkspaceOvercommit
from apps.projects import scope


def _all_for_authenticated(model):
    def queryset_for(user) -> QuerySet:
        if user is None or not user.is_authenticated:
            return model.objects.none()
        return model.objects.all()

    queryset_for.__name__ = f"{model.__name__.lower()}s_for"
    return queryset_for


clusters_for = _all_for_authenticated(Cluster)
nodes_for = _all_for_authenticated(Node)


def register() -> None:
    scope.register(Cluster, clusters_for)
    scope.register(Node, nodes_for)
    scope.register(WorkspaceOvercommit, _all_for_authenticated(WorkspaceOvercommit))
    scope.register(InspectionReport, _all_for_authenticated(InspectionReport))
