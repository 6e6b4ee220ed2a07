"""Tables of the release and runtime pages."""

import django_tables2 as tables
from django.utils.html import format_html

from apps.deploy.models import Deployment, Release, Runtime
from dice_console.columns import DurationColumn, WhenColumn


class ReleaseTable(tables.Table):
    version = tables.Column(linkify=lambda record: record.get_absolute_url(), verbose_name="Version")
    images = tables.Column(orderable=False, verbose_name="Images")
    content_hash = tables.Column(verbose_name="Hash", orderable=False)
    created_by_name = tables.Column(verbose_name="By")
    pipeline_run_id = tables.Column(verbose_name="Pipeline run")
    created = WhenColumn(verbose_name="Created")

    class Meta:
        model = Release
        fields = ("version", "description", "images", "content_hash", "created_by_name", "pipeline_run_id", "created")
        empty_text = "No releases yet."

    def render_version(self, value):
        return f"v{value}"

    def render_images(self, value):
        return ", ".join(f"{k}={v}" for k, v in value.items()) if value else "—"

    def render_content_hash(self, value):
        return value[:12]


class RuntimeTable(tables.Table):
    name = tables.Column(linkify=lambda record: record.get_absolute_url())
    workspace = tables.Column(accessor="workspace__kind", verbose_name="Workspace")
    cluster = tables.Column(accessor="cluster__name", verbose_name="Cluster")
    release = tables.Column(verbose_name="Release", orderable=False)
    created = WhenColumn(verbose_name="Created")
    updated = WhenColumn(verbose_name="Updated")

    class Meta:
        model = Runtime
        fields = ("name", "workspace", "cluster", "release", "created", "updated")
        empty_text = "No runtimes yet: deploy a release."

    def render_release(self, value):
        return f"v{value.version}"


class DeploymentTable(tables.Table):
    """Every deployment the user can see, newest first (the Deployments page of the navigation)."""

    id = tables.Column(verbose_name="#", linkify=lambda record: record.get_absolute_url())
    application = tables.Column(accessor="runtime__application", verbose_name="Application", orderable=False,
                                linkify=lambda record: record.runtime.application.get_absolute_url())
    runtime = tables.Column(verbose_name="Runtime", orderable=False,
                            linkify=lambda record: record.runtime.get_absolute_url())
    release = tables.Column(verbose_name="Release", orderable=False,
                            linkify=lambda record: record.release.get_absolute_url())
    status = tables.Column(verbose_name="Status")
    created_by_name = tables.Column(verbose_name="By")
    created = WhenColumn(verbose_name="Created")
    took = DurationColumn(start="created", end="finished", verbose_name="Duration")

    class Meta:
        model = Deployment
        fields = ("id", "application", "runtime", "release", "status", "created_by_name", "created", "took")
        empty_text = "No deployments yet."

    def render_application(self, value):
        return f"{value.project.organization.slug}/{value.project.slug}/{value.slug}"

    def render_runtime(self, value):
        return f"{value.workspace.kind}/{value.name}"

    def render_release(self, value):
        return f"v{value.version}"

    def render_status(self, record):
        return format_html('<span class="status status-{}">{}</span>', record.status, record.get_status_display())
