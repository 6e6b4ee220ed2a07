"""Indexes that serve the audit log's scoped list: its order alone, and after each column the
tenant scope filters on."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("projects", "0005_workspace_data_clusters"),
    ]

    operations = [
        migrations.AddIndex(model_name="auditevent", index=models.Index(fields=["-created", "-id"], name="audit_newest")),
        migrations.AddIndex(model_name="auditevent", index=models.Index(
            fields=["organization", "-created", "-id"], name="audit_org_newest")),
        migrations.AddIndex(model_name="auditevent", index=models.Index(
            fields=["project", "-created", "-id"], name="audit_project_newest")),
        migrations.AddIndex(model_name="auditevent", index=models.Index(
            fields=["application", "-created", "-id"], name="audit_app_newest")),
        migrations.AddIndex(model_name="auditevent", index=models.Index(
            fields=["actor", "-created", "-id"], name="audit_actor_newest")),
    ]
