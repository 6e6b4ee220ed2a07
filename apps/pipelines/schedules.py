"""Cron schedules of pipeline definitions: one django-celery-beat PeriodicTask per definition with
a `cron` (a crontab, or `@every <duration>` as an interval), running the task
`dice.pipelines.cron_run` (apps.pipelines.triggers.run_from_cron)."""

from __future__ import annotations

import json
import re

from django.core.exceptions import ValidationError
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from apps.pipelines.models import PipelineDefinition
from pipelineyml import PipelineYml


def cron_task_name(definition: PipelineDefinition) -> str:
    return f"pipeline-definition-{definition.pk}"


MIN_INTERVAL = 60  # seconds: the shortest `@every` a definition may ask for
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def crontab_fields(cron: str) -> dict[str, str]:
    """5 fields (minute hour day month weekday), 6 with seconds first (dropped: beat ticks by the
    minute), or 7 with a year last (only `*`/`?`: a crontab cannot name years); `?` is `*`.
    ValueError naming the problem for anything a crontab schedule cannot express."""
    if cron.startswith("@"):
        presets = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
                   "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
        if cron not in presets:
            raise ValueError(f"cron {cron!r}: unknown descriptor")
        cron = presets[cron]
    parts = [p.replace("?", "*") for p in cron.split()]
    if len(parts) == 7:
        if parts[6] != "*":
            raise ValueError(f"cron {cron!r}: the year field must be * or ? (a schedule cannot be limited to years)")
        parts = parts[:6]
    if len(parts) == 6:
        parts = parts[1:]
    if len(parts) != 5:
        raise ValueError(f"cron {cron!r}: expected 5, 6 or 7 fields, found {len(parts)}")
    minute, hour, day, month, weekday = parts
    return {"minute": minute, "hour": hour, "day_of_month": day, "month_of_year": month, "day_of_week": weekday}


def every_seconds(cron: str) -> float | None:
    """`@every 1h30m` as seconds; None when `cron` is not an `@every`."""
    text = cron.strip()
    if not text.startswith("@every"):
        return None
    duration = text.removeprefix("@every").strip()
    total, pos = 0.0, 0
    for match in re.finditer(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", duration):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(duration) or not duration:
        raise ValueError(f"cron {cron!r}: `@every` takes a duration such as 30m or 1h30m")
    return total


def sync_cron(definition: PipelineDefinition, pipeline: PipelineYml) -> None:
    """Create, update or remove the definition's periodic task to match its `cron`.

    ValidationError (a 400 naming `cron`) for a schedule beat cannot run: an `@every` shorter than
    MIN_INTERVAL, or a Quartz year other than `*`."""
    if not pipeline.cron:
        remove_cron(definition)
        return
    try:
        seconds = every_seconds(pipeline.cron)
        if seconds is not None and seconds < MIN_INTERVAL:
            raise ValueError(f"cron {pipeline.cron!r}: runs at most once every {MIN_INTERVAL} seconds")
        fields = crontab_fields(pipeline.cron) if seconds is None else None
    except ValueError as exc:
        raise ValidationError({"cron": str(exc)}) from None
    if seconds is not None:
        interval, _ = IntervalSchedule.objects.get_or_create(every=int(seconds), period=IntervalSchedule.SECONDS)
        defaults = {"interval": interval, "crontab": None}
    else:
        defaults = {"crontab": CrontabSchedule.objects.get_or_create(**fields, timezone="UTC")[0], "interval": None}
    PeriodicTask.objects.update_or_create(
        name=cron_task_name(definition),
        defaults={"task": "dice.pipelines.cron_run", **defaults,
                  "args": json.dumps([definition.pk]), "enabled": True},
    )


def remove_cron(definition: PipelineDefinition) -> None:
    PeriodicTask.objects.filter(name=cron_task_name(definition)).delete()
