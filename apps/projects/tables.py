"""Tables of the tenancy pages."""

import django_tables2 as tables

from apps.projects.models import Application, AuditEvent, Member, Organization, Project


class OrganizationTable(tables.Table):
    slug = tables.Column(linkify=True, verbose_name="Organization")
    projects = tables.Column(accessor="project_count", verbose_name="Projects", orderable=False)

    class Meta:
        model = Organization
        fields = ("slug", "name", "description", "created")
        sequence = ("slug", "name", "projects", "description", "created")


class ProjectTable(tables.Table):
    slug = tables.Column(linkify=True, verbose_name="Project")
    organization = tables.Column(linkify=True)
    applications = tables.Column(accessor="application_count", verbose_name="Applications", orderable=False)

    class Meta:
        model = Project
        fields = ("slug", "organization", "name", "description", "created")
        sequence = ("slug", "organization", "name", "applications", "description", "created")


class ApplicationTable(tables.Table):
    slug = tables.Column(linkify=True, verbose_name="Application")
    project = tables.Column(linkify=True)

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


class AuditEventTable(tables.Table):
    class Meta:
        model = AuditEvent
        fields = ("created", "actor_name", "organization", "action", "object_type", "object_repr")
