"""The periodic reconciler of deployments (django-celery-beat), created idempotently."""

from django.db import migrations

SCHEDULE = [
    # (name, task, every seconds)
    ("dice: reconcile deployments", "dice.deploy.reconcile", 60),
]


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, seconds in SCHEDULE:
        interval, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "interval": interval})


def remove(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[n for n, _, _ in SCHEDULE]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("deploy", "0002_runtimes_deployments"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
