"""Filtersets of the clusters app, shared by the pages and the API."""

import django_filters

from apps.clusters.choices import CheckStatus, cluster_kinds
from apps.clusters.models import Cluster, Node
from apps.projects.filtersets import SearchFilterSet


class ClusterFilterSet(SearchFilterSet):
    search_fields = ("name", "description", "api_server", "wildcard_domain")
    kind = django_filters.ChoiceFilter(choices=cluster_kinds)
    check_status = django_filters.ChoiceFilter(choices=CheckStatus.choices)

    class Meta:
        model = Cluster
        fields = ["name", "kind", "check_status"]


class NodeFilterSet(SearchFilterSet):
    search_fields = ("name", "internal_ip")
    ready = django_filters.BooleanFilter()
    label = django_filters.CharFilter(method="has_label", help_text="a label key the node carries as 'true'")

    class Meta:
        model = Node
        fields = ["name", "ready", "label"]

    def has_label(self, queryset, name, value):
        return queryset.filter(**{f"labels__{value}": "true"}) if value else queryset
