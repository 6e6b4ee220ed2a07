"""Tables of the tenancy pages."""

import django_tables2 as tables

from apps.projects.models import Application, AuditEvent, Member, Organization, Project
from dice_console.columns import WhenColumn
from dice_console.templatetags.dice_format import human_kind


class OrganizationTable(tables.Table):
    slug = tables.Column(linkify=True, verbose_name="Organization")
    created = WhenColumn(verbose_name="Created")
    projects = tables.Column(accessor="project_count", verbose_name="Projects", orderable=False)

    class Meta:
        model = Organization
        fields = ("slug", "name", "description", "created")
        sequence = ("slug", "name", "projects", "description", "created")


class ProjectTable(tables.Table):
    slug = tables.Column(linkify=True, verbose_name="Project")
    organization = tables.Column(linkify=True)
    applications = tables.Column(accessor="application_count", verbose_name="Applications", orderable=False)
    created = WhenColumn(verbose_name="Created")

    class Meta:
        model = Project
        fields = ("slug", "organization", "name", "description", "created")
        sequence = ("slug", "organization", "name", "applications", "description", "created")


class ApplicationTable(tables.Table):
    slug = tables.Column(linkify=True, verbose_name="Application")
    project = tables.Column(linkify=True)
    repo_url = tables.Column(verbose_name="Repository")
    created = WhenColumn(verbose_name="Created")

    class Meta:
        model = Application
        fields = ("slug", "project", "name", "repo_url", "created")


class MemberTable(tables.Table):
    user = tables.Column(accessor="user__username", verbose_name="User")
    scope = tables.Column(accessor="target", verbose_name="Scope", orderable=False)
    actions = tables.TemplateColumn(template_name="projects/member_actions.html", orderable=False, verbose_name="")

    class Meta:
        model = Member
        fields = ("user", "role", "scope", "created")

    created = WhenColumn(verbose_name="Since")


class AuditEventTable(tables.Table):
    created = WhenColumn(verbose_name="When")
    actor_name = tables.Column(verbose_name="Who")
    object_type = tables.Column(verbose_name="Kind")
    object_repr = tables.Column(verbose_name="Object")

    def render_object_type(self, value):
        return human_kind(value)

    class Meta:
        model = AuditEvent
        fields = ("created", "actor_name", "organization", "action", "object_type", "object_repr")
