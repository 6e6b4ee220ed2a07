"""Clusters belong to someone: an owning organization, or platform-wide with grants.

Existing clusters become platform-wide (managed by staff). `local` is granted to every
organization (standalone consoles keep working); every other cluster is granted to exactly the
organizations whose workspaces were bound to it, so nobody gains or loses a cluster they used."""

from django.db import migrations, models
import django.db.models.deletion


def grant_existing(apps, schema_editor):
    Cluster = apps.get_model("clusters", "Cluster")
    Workspace = apps.get_model("projects", "Workspace")
    for cluster in Cluster.objects.all():
        if cluster.name == "local":
            cluster.all_organizations = True
            cluster.save(update_fields=["all_organizations"])
            continue
        orgs = set(Workspace.objects.filter(cluster=cluster).values_list("project__organization", flat=True))
        cluster.granted_to.set(orgs)


class Migration(migrations.Migration):

    dependencies = [
        ("clusters", "0004_beat_schedule"),
        ("projects", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="cluster",
            name="organization",
            field=models.ForeignKey(
                blank=True, help_text="The owning organization; empty: a platform-wide cluster managed by staff",
                null=True, on_delete=django.db.models.deletion.CASCADE, related_name="clusters",
                to="projects.organization"),
        ),
        migrations.AddField(
            model_name="cluster",
            name="granted_to",
            field=models.ManyToManyField(
                blank=True, help_text="Organizations that may bind workspaces to this platform-wide cluster",
                related_name="granted_clusters", to="projects.organization"),
        ),
        migrations.AddField(
            model_name="cluster",
            name="all_organizations",
            field=models.BooleanField(default=False, help_text="A platform-wide cluster every organization may use"),
        ),
        migrations.RunPython(grant_existing, migrations.RunPython.noop),
    ]
