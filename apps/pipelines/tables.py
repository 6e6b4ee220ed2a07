"""Tables of the pipeline pages."""

import django_tables2 as tables
from django.utils.html import format_html

from apps.pipelines.models import PipelineRun
from dice_console.columns import DurationColumn, WhenColumn


class PipelineRunTable(tables.Table):
    """Pipeline runs across the applications the user can see (the Pipelines page of the navigation)."""

    id = tables.Column(verbose_name="Run", linkify=lambda record: record.get_absolute_url())
    application = tables.Column(verbose_name="Application", orderable=False,
                                linkify=lambda record: record.application.get_absolute_url())
    name = tables.Column(verbose_name="Pipeline")
    status = tables.Column(verbose_name="Status")
    workspace = tables.Column(verbose_name="Workspace")
    trigger = tables.Column(verbose_name="Trigger")
    created_by_name = tables.Column(verbose_name="By")
    created = WhenColumn(verbose_name="Created")
    took = DurationColumn(verbose_name="Duration")

    class Meta:
        model = PipelineRun
        fields = ("id", "application", "name", "status", "workspace", "trigger", "created_by_name", "created", "took")
        empty_text = "No pipeline runs yet."

    def render_id(self, value):
        return f"#{value}"

    def render_application(self, value):
        return f"{value.project.organization.slug}/{value.project.slug}/{value.slug}"

    def render_status(self, record):
        return format_html('<span class="status status-{}">{}</span>', record.status, record.get_status_display())
