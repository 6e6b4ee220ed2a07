"""One filterset for configuration items across kinds, shared by the pages and the API."""

import django_filters
from django.db.models import Q

from apps.cmdb.choices import ChangeAction, ItemKind
from apps.cmdb.models import Change, ConfigurationItem

MAX_HOURS = 24 * 366 * 100  # a century


class ItemFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    kind = django_filters.ChoiceFilter(choices=ItemKind.choices)
    cluster = django_filters.CharFilter(field_name="cluster__name", label="Cluster")
    present = django_filters.BooleanFilter()

    class Meta:
        model = ConfigurationItem
        fields = ["q", "kind", "cluster", "present"]

    def search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(Q(name__icontains=value) | Q(key__icontains=value) | Q(org_slug__icontains=value))


class ChangeFilterSet(django_filters.FilterSet):
    # Bounded: a timedelta of 1e20 hours overflows (a 400 naming `hours`, not a 500).
    hours = django_filters.NumberFilter(method="since", label="Within the last N hours", min_value=0,
                                        max_value=MAX_HOURS)
    kind = django_filters.ChoiceFilter(field_name="item__kind", choices=ItemKind.choices)
    action = django_filters.ChoiceFilter(choices=ChangeAction.choices)
    cluster = django_filters.CharFilter(field_name="item__cluster__name")

    class Meta:
        model = Change
        fields = ["hours", "kind", "action", "cluster"]

    def since(self, queryset, name, value):
        from apps.cmdb.services import changes_since

        return changes_since(queryset, float(value)) if value else queryset
