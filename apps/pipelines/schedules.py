"""Cron schedules of pipeline definitions: one django-celery-beat PeriodicTask per definition with
a `cron`, running the task `dice.pipelines.cron_run` (apps.pipelines.triggers.run_from_cron)."""

from __future__ import annotations

import json

from django_celery_beat.models import CrontabSchedule, PeriodicTask

from apps.pipelines.models import PipelineDefinition
from pipelineyml import PipelineYml


def cron_task_name(definition: PipelineDefinition) -> str:
    return f"pipeline-definition-{definition.pk}"


def crontab_fields(cron: str) -> dict[str, str]:
    """5 fields (minute hour day month weekday), or 6 with seconds first (dropped); `?` is `*`."""
    if cron.startswith("@"):
        presets = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
                   "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
        cron = presets.get(cron, cron)
    parts = [p.replace("?", "*") for p in cron.split()]
    if len(parts) == 6:
        parts = parts[1:]
    minute, hour, day, month, weekday = parts
    return {"minute": minute, "hour": hour, "day_of_month": day, "month_of_year": month, "day_of_week": weekday}


def sync_cron(definition: PipelineDefinition, pipeline: PipelineYml) -> None:
    """Create, update or remove the definition's periodic task to match its `cron`."""
    if not pipeline.cron:
        remove_cron(definition)
        return
    schedule, _ = CrontabSchedule.objects.get_or_create(**crontab_fields(pipeline.cron), timezone="UTC")
    PeriodicTask.objects.update_or_create(
        name=cron_task_name(definition),
        defaults={"task": "dice.pipelines.cron_run", "crontab": schedule, "interval": None,
                  "args": json.dumps([definition.pk]), "enabled": True},
    )


def remove_cron(definition: PipelineDefinition) -> None:
    PeriodicTask.objects.filter(name=cron_task_name(definition)).delete()
