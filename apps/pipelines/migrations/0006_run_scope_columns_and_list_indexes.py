"""Pipeline runs keep their application's organization and project beside them (filled for
existing rows here), with indexes that serve the scoped lists' filter and order."""

from django.db import migrations, models
from django.db.models import OuterRef, Subquery
import django.db.models.deletion


def fill_scope_columns(apps, schema_editor):
    apps_of = apps.get_model("projects", "Application").objects.filter(pk=OuterRef("application_id"))
    apps.get_model("pipelines", "PipelineRun").objects.update(
        scope_project_id=Subquery(apps_of.values("project_id")[:1]),
        scope_organization_id=Subquery(apps_of.values("project__organization_id")[:1]),
    )


def _scope_fields(null: bool):
    op = migrations.AddField if null else migrations.AlterField
    return [
        op(model_name="pipelinerun", name="scope_organization",
           field=models.ForeignKey(db_index=False, editable=False, null=null,
                                   on_delete=django.db.models.deletion.CASCADE, related_name="+",
                                   to="projects.organization")),
        op(model_name="pipelinerun", name="scope_project",
           field=models.ForeignKey(db_index=False, editable=False, null=null,
                                   on_delete=django.db.models.deletion.CASCADE, related_name="+",
                                   to="projects.project")),
    ]


class Migration(migrations.Migration):

    dependencies = [
        ("pipelines", "0005_preview_environments"),
        ("projects", "0006_audit_list_indexes"),
    ]

    operations = [
        *_scope_fields(null=True),
        migrations.RunPython(fill_scope_columns, migrations.RunPython.noop),
        *_scope_fields(null=False),
        migrations.AddIndex(model_name="pipelinerun", index=models.Index(fields=["-created", "-id"], name="run_newest")),
        migrations.AddIndex(model_name="pipelinerun", index=models.Index(
            fields=["application", "-created", "-id"], name="run_app_newest")),
        migrations.AddIndex(model_name="pipelinerun", index=models.Index(
            fields=["scope_organization", "-created", "-id"], name="run_org_newest")),
        migrations.AddIndex(model_name="pipelinerun", index=models.Index(
            fields=["scope_project", "-created", "-id"], name="run_project_newest")),
    ]
