"""The scope of the cluster models: a user sees the clusters their organizations may use (owned by
one of them, granted to one of them, or granted to all); staff see every cluster.

Managing a cluster: an organization's cluster by that organization's owners and ops
(manage_clusters at organization level); a platform-wide cluster by staff only."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from apps.clusters.models import Cluster, InspectionReport, Node, WorkspaceOvercommit
from apps.projects import permissions as perms
from apps.projects import scope
from apps.projects.models import Member, Organization


def _usable_q(org_ids) -> Q:
    return (Q(organization__in=org_ids) | Q(organization__isnull=True, all_organizations=True)
            | Q(organization__isnull=True, granted_to__in=org_ids))


def clusters_for(user) -> QuerySet[Cluster]:
    if user is None or not user.is_authenticated:
        return Cluster.objects.none()
    if user.is_superuser:
        return Cluster.objects.all()
    orgs = scope.organizations_for(user).values("pk")
    return Cluster.objects.filter(pk__in=Cluster.objects.filter(_usable_q(orgs)).values("pk"))


def usable_by(organization) -> QuerySet[Cluster]:
    """Clusters the organization's workspaces may be bound to."""
    return Cluster.objects.filter(pk__in=Cluster.objects.filter(_usable_q([organization.pk])).values("pk"))


def usable_by_organizations(cluster: Cluster) -> QuerySet:
    """Ids of the organizations that may use the cluster."""
    if cluster.organization_id is not None:
        return Organization.objects.filter(pk=cluster.organization_id).values("pk")
    if cluster.all_organizations:
        return Organization.objects.values("pk")
    return cluster.granted_to.values("pk")


def managed_organizations(user) -> QuerySet:
    """Organizations whose clusters the user may manage (an org-level role with manage_clusters)."""
    roles = [r for r in perms.PERMISSIONS if perms.role_allows(r, perms.MANAGE_CLUSTERS)]
    return Member.objects.filter(user=user, project__isnull=True, application__isnull=True,
                                 role__in=roles).values("organization")


def can_manage_cluster(user, cluster: Cluster) -> bool:
    if user is None or not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    if cluster.organization_id is None:
        return False
    return scope.has_perm(user, perms.MANAGE_CLUSTERS, cluster.organization)


def _through_cluster(model):
    def queryset_for(user) -> QuerySet:
        if user is None or not user.is_authenticated:
            return model.objects.none()
        if user.is_superuser:
            return model.objects.all()
        return model.objects.filter(cluster__in=clusters_for(user))

    queryset_for.__name__ = f"{model.__name__.lower()}s_for"
    return queryset_for


nodes_for = _through_cluster(Node)


def register() -> None:
    scope.register(Cluster, clusters_for)
    scope.register(Node, nodes_for)
    scope.register(WorkspaceOvercommit, _through_cluster(WorkspaceOvercommit))
    scope.register(InspectionReport, _through_cluster(InspectionReport))
