"""The scope of the CMDB: shared items (clusters, nodes, hosts, namespaces of no organization) for
every authenticated user; items tied to an organization only for its members."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from apps.cmdb.choices import SHARED_KINDS
from apps.cmdb.models import Change, ConfigurationItem, Relation
from apps.projects import scope


def items_for(user) -> QuerySet[ConfigurationItem]:
    if user is None or not user.is_authenticated:
        return ConfigurationItem.objects.none()
    if user.is_superuser:
        return ConfigurationItem.objects.all()
    return ConfigurationItem.objects.filter(
        Q(organization__in=scope.organizations_for(user))
        | Q(organization__isnull=True, org_slug="", kind__in=SHARED_KINDS)
    )


def changes_for(user) -> QuerySet[Change]:
    return Change.objects.filter(item__in=items_for(user))


def relations_for(user) -> QuerySet[Relation]:
    items = items_for(user)
    return Relation.objects.filter(source__in=items, target__in=items)


def register() -> None:
    scope.register(ConfigurationItem, items_for)
    scope.register(Change, changes_for)
    scope.register(Relation, relations_for)
