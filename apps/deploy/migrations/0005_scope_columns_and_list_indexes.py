"""Releases, runtimes and deployments keep their application's organization and project beside
them (filled for existing rows here), with indexes that serve the scoped lists' filter and order."""

from django.db import migrations, models
from django.db.models import OuterRef, Subquery
import django.db.models.deletion


def fill_scope_columns(apps, schema_editor):
    Application = apps.get_model("projects", "Application")
    Runtime = apps.get_model("deploy", "Runtime")
    apps_of = Application.objects.filter(pk=OuterRef("application_id"))
    for name in ("Release", "Runtime"):
        model = apps.get_model("deploy", name)
        model.objects.update(
            scope_project_id=Subquery(apps_of.values("project_id")[:1]),
            scope_organization_id=Subquery(apps_of.values("project__organization_id")[:1]),
        )
    runtimes = Runtime.objects.filter(pk=OuterRef("runtime_id"))
    apps.get_model("deploy", "Deployment").objects.update(
        scope_project_id=Subquery(runtimes.values("scope_project_id")[:1]),
        scope_organization_id=Subquery(runtimes.values("scope_organization_id")[:1]),
    )


def _scope_fields(model: str, *, null: bool):
    return [
        (migrations.AddField if null else migrations.AlterField)(
            model_name=model, name="scope_organization",
            field=models.ForeignKey(db_index=False, editable=False, null=null,
                                    on_delete=django.db.models.deletion.CASCADE, related_name="+",
                                    to="projects.organization")),
        (migrations.AddField if null else migrations.AlterField)(
            model_name=model, name="scope_project",
            field=models.ForeignKey(db_index=False, editable=False, null=null,
                                    on_delete=django.db.models.deletion.CASCADE, related_name="+",
                                    to="projects.project")),
    ]


class Migration(migrations.Migration):

    dependencies = [
        ("deploy", "0004_environment_variables"),
        ("projects", "0006_audit_list_indexes"),
    ]

    operations = [
        migrations.AlterModelOptions(name="release", options={"ordering": ["application_id", "-version"]}),
        *_scope_fields("release", null=True),
        *_scope_fields("runtime", null=True),
        *_scope_fields("deployment", null=True),
        migrations.RunPython(fill_scope_columns, migrations.RunPython.noop),
        *_scope_fields("release", null=False),
        *_scope_fields("runtime", null=False),
        *_scope_fields("deployment", null=False),
        migrations.AddIndex(model_name="deployment", index=models.Index(fields=["-created", "-id"], name="deployment_newest")),
        migrations.AddIndex(model_name="deployment", index=models.Index(
            fields=["scope_organization", "-created", "-id"], name="deployment_org_newest")),
        migrations.AddIndex(model_name="deployment", index=models.Index(
            fields=["scope_project", "-created", "-id"], name="deployment_project_newest")),
        migrations.AddIndex(model_name="release", index=models.Index(fields=["application", "-version"], name="release_app_newest")),
        migrations.AddIndex(model_name="release", index=models.Index(
            fields=["scope_organization", "application", "-version"], name="release_org_newest")),
        migrations.AddIndex(model_name="release", index=models.Index(
            fields=["scope_project", "application", "-version"], name="release_project_newest")),
        migrations.AddIndex(model_name="runtime", index=models.Index(fields=["scope_organization"], name="runtime_org")),
        migrations.AddIndex(model_name="runtime", index=models.Index(fields=["scope_project"], name="runtime_project")),
    ]
