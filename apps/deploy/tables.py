"""Tables of the release pages."""

import django_tables2 as tables

from apps.deploy.models import Release


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
