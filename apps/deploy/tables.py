"""Tables of the release and runtime pages."""

import django_tables2 as tables

from apps.deploy.models import Release, Runtime


class ReleaseTable(tables.Table):
    version = tables.Column(linkify=lambda record: record.get_absolute_url(), verbose_name="Version")
    images = tables.Column(orderable=False, verbose_name="Images")
    content_hash = tables.Column(verbose_name="Hash", orderable=False)
    created_by_name = tables.Column(verbose_name="By")

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

    class Meta:
        model = Runtime
        fields = ("name", "workspace", "cluster", "release", "created", "updated")
        empty_text = "No runtimes yet: deploy a release."

    def render_release(self, value):
        return f"v{value.version}"
