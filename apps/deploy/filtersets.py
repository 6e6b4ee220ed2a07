"""Filtersets of the deploy models, shared by the HTML lists and the API lists."""

import django_filters

from apps.deploy.models import Release
from apps.projects.filtersets import SearchFilterSet


class ReleaseFilterSet(SearchFilterSet):
    search_fields = ("description", "content_hash", "created_by_name", "application__slug")
    org = django_filters.CharFilter(field_name="application__project__organization__slug", label="Organization")
    project = django_filters.CharFilter(field_name="application__project__slug", label="Project")
    app = django_filters.CharFilter(field_name="application__slug", label="Application")
    application = django_filters.NumberFilter(field_name="application_id", label="Application id")
    version = django_filters.NumberFilter()
    pipeline_run_id = django_filters.NumberFilter()

    class Meta:
        model = Release
        fields = ["org", "project", "app", "application", "version", "pipeline_run_id"]
