"""The `local` cluster always exists."""

from django.db import migrations


def create_local(apps, schema_editor):
    Cluster = apps.get_model("clusters", "Cluster")
    Cluster.objects.get_or_create(
        name="local", defaults={"kind": "local", "description": "Processes on the console's machine"}
    )


class Migration(migrations.Migration):
    dependencies = [("clusters", "0001_initial")]

    operations = [migrations.RunPython(create_local, migrations.RunPython.noop)]
