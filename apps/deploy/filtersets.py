"""Filtersets of the deploy models, shared by the HTML lists and the API lists."""

import django_filters

from apps.deploy.choices import DeploymentStatus
from apps.deploy.models import Deployment, EnvironmentVariable, Release, Runtime
from apps.projects.filtersets import ProjectFilter, SearchFilterSet
from dice_console.api_input import INT64_MAX, digits


class ReleaseFilterSet(SearchFilterSet):
    search_fields = ("description", "content_hash", "created_by_name", "application__slug")
    org = django_filters.CharFilter(field_name="application__project__organization__slug", label="Organization")
    project = ProjectFilter("application__project")
    app = django_filters.CharFilter(field_name="application__slug", label="Application")
    application = django_filters.NumberFilter(field_name="application_id", label="Application id")
    version = django_filters.NumberFilter()
    pipeline_run_id = django_filters.NumberFilter()

    class Meta:
        model = Release
        fields = ["org", "project", "app", "application", "version", "pipeline_run_id"]


class RuntimeFilterSet(SearchFilterSet):
    search_fields = ("name", "application__slug")
    org = django_filters.CharFilter(field_name="application__project__organization__slug", label="Organization")
    project = ProjectFilter("application__project")
    app = django_filters.CharFilter(field_name="application__slug", label="Application")
    application = django_filters.NumberFilter(field_name="application_id", label="Application id")
    workspace = django_filters.CharFilter(field_name="workspace__kind", lookup_expr="iexact", label="Workspace")
    name = django_filters.CharFilter()
    cluster = django_filters.CharFilter(field_name="cluster__name", label="Cluster")

    class Meta:
        model = Runtime
        fields = ["org", "project", "app", "application", "workspace", "name", "cluster"]


class DeploymentFilterSet(SearchFilterSet):
    search_fields = ("runtime__name", "runtime__application__slug", "created_by_name", "message")
    org = django_filters.CharFilter(field_name="runtime__application__project__organization__slug",
                                    label="Organization")
    project = ProjectFilter("runtime__application__project")
    app = django_filters.CharFilter(field_name="runtime__application__slug", label="Application")
    application = django_filters.NumberFilter(field_name="runtime__application_id", label="Application id")
    workspace = django_filters.CharFilter(field_name="runtime__workspace__kind", lookup_expr="iexact",
                                          label="Workspace")
    runtime = django_filters.NumberFilter(field_name="runtime_id", label="Runtime id")
    runtime_name = django_filters.CharFilter(field_name="runtime__name", label="Runtime name")
    status = django_filters.MultipleChoiceFilter(choices=DeploymentStatus.choices)
    release = django_filters.NumberFilter(field_name="release_id")

    class Meta:
        model = Deployment
        fields = ["org", "project", "app", "application", "workspace", "runtime", "runtime_name", "status", "release"]


class ApplicationRefFilter(django_filters.CharFilter):
    """`?application=` as the id (`12`) or the full name (`acme/shop/web`)."""

    def filter(self, qs, value):
        value = (value or "").strip()
        if not value:
            return qs
        if digits(value):  # an id a database column can hold, else nothing matches
            return qs.filter(**{f"{self.field_name}_id": int(value)}) if int(value) <= INT64_MAX else qs.none()
        parts = value.split("/")
        if len(parts) != 3:
            return qs.none()
        org, project, app = parts
        return qs.filter(**{f"{self.field_name}__project__organization__slug": org,
                            f"{self.field_name}__project__slug": project, f"{self.field_name}__slug": app})


class VariableFilterSet(SearchFilterSet):
    search_fields = ("name",)
    org = django_filters.CharFilter(field_name="application__project__organization__slug", label="Organization")
    project = ProjectFilter("application__project")
    application = ApplicationRefFilter(field_name="application", label="Application (id or org/project/app)")
    workspace = django_filters.CharFilter(field_name="workspace__kind", lookup_expr="iexact", label="Workspace")
    name = django_filters.CharFilter()
    secret = django_filters.BooleanFilter()

    class Meta:
        model = EnvironmentVariable
        fields = ["org", "project", "application", "workspace", "name", "secret"]
