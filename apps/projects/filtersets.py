"""Filtersets shared by the HTML lists and the API lists."""

import re

import django_filters
from django import forms
from django.db.models import Q, Subquery

from apps.projects.choices import Role, WorkspaceKind
from apps.projects.models import Application, AuditEvent, Member, Organization, Project, Workspace
from dice_console.api_input import digits

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_INT64 = 2**63 - 1


class ProjectRefField(forms.CharField):
    """An id (a whole number a database column holds), `org/slug` or a slug: `1e20`, `1.5` and
    2**63 are refused with a message, never passed on to the database."""

    def to_python(self, value):
        value = super().to_python(value).strip()
        if value and _NUMBER.match(value):
            if not digits(value.lstrip("+-")):
                raise forms.ValidationError("a project id is a whole number (no decimals or exponent); "
                                            "or give ORG/SLUG or the slug", code="invalid")
            if abs(int(value)) > _INT64:
                raise forms.ValidationError("a project id fits 64 bits", code="invalid")
        return value


class ProjectFilter(django_filters.CharFilter):
    """`?project=` as the bare slug (`shop`), the full name (`acme/shop`) or the id (`12`).

    `to` is the path from the filtered model to its project ("project", "application__project")."""

    field_class = ProjectRefField

    def __init__(self, to: str = "project", **kwargs):
        kwargs.setdefault("label", "Project (slug, org/slug or id)")
        super().__init__(field_name=to, **kwargs)

    def filter(self, qs, value):
        value = (value or "").strip()
        if not value:
            return qs
        if digits(value.lstrip("+-")):
            return qs.filter(**{f"{self.field_name}_id": int(value)})
        org, sep, slug = value.rpartition("/")
        if sep:
            return qs.filter(**{f"{self.field_name}__organization__slug": org, f"{self.field_name}__slug": slug})
        return qs.filter(**{f"{self.field_name}__slug": value})


class SearchFilterSet(django_filters.FilterSet):
    """Adds `q`, a case-insensitive search over `search_fields`."""

    search_fields: tuple[str, ...] = ()
    q = django_filters.CharFilter(method="search", label="Search")

    def search(self, queryset, name, value):
        if not value.strip():
            return queryset
        cond = Q()
        for field in self.search_fields:
            cond |= Q(**{f"{field}__icontains": value.strip()})
        return queryset.filter(cond)


class OrganizationFilterSet(SearchFilterSet):
    search_fields = ("slug", "name", "description")

    class Meta:
        model = Organization
        fields = ["slug"]


class ProjectFilterSet(SearchFilterSet):
    search_fields = ("slug", "name", "description")
    org = django_filters.CharFilter(field_name="organization__slug", label="Organization")

    class Meta:
        model = Project
        fields = ["slug", "org"]


class ApplicationFilterSet(SearchFilterSet):
    search_fields = ("slug", "name", "description", "repo_url")
    org = django_filters.CharFilter(field_name="project__organization__slug", label="Organization")
    project = ProjectFilter("project")

    class Meta:
        model = Application
        fields = ["slug", "org", "project"]


class WorkspaceFilterSet(django_filters.FilterSet):
    org = django_filters.CharFilter(field_name="project__organization__slug")
    project = ProjectFilter("project")
    kind = django_filters.ChoiceFilter(choices=WorkspaceKind.choices)

    class Meta:
        model = Workspace
        fields = ["org", "project", "kind"]


class MemberFilterSet(SearchFilterSet):
    search_fields = ("user__username",)
    org = django_filters.CharFilter(field_name="organization__slug")
    project = ProjectFilter("project")
    application = django_filters.NumberFilter(field_name="application_id")
    role = django_filters.ChoiceFilter(choices=Role.choices)

    class Meta:
        model = Member
        fields = ["org", "project", "application", "role"]


class AuditEventFilterSet(SearchFilterSet):
    search_fields = ("object_repr", "actor_name", "action")
    org = django_filters.CharFilter(method="in_organization", label="Organization")
    object_type = django_filters.CharFilter()
    action = django_filters.CharFilter()

    class Meta:
        model = AuditEvent
        fields = ["org", "object_type", "action"]

    def in_organization(self, queryset, name, value):
        # The organization's id as a subquery of its own, not a join: the planner then reads the
        # (organization, created) index in the list's order.
        return queryset.filter(organization_id=Subquery(Organization.objects.filter(slug=value).values("pk")[:1]))
