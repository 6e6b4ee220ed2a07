"""How every page shows times, durations, sizes and missing values (a builtin of the templates:
no {% load %} needed). One time format with its zone everywhere; relative times carry the exact
time on hover; a duration counts up in the browser while the thing still runs."""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils import timezone
from django.utils.html import format_html

register = template.Library()

TIME_FORMAT = "%Y-%m-%d %H:%M:%S %Z"
EMPTY = "—"


def exact_text(value: dt.datetime | None) -> str:
    """2026-12-06 20:15:03 UTC, in the console's time zone."""
    if value is None:
        return EMPTY
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return value.strftime(TIME_FORMAT).strip()


@register.filter
def exact(value):
    """The exact time with its zone, as text."""
    if value in (None, ""):
        return EMPTY
    if isinstance(value, (int, float)):
        value = dt.datetime.fromtimestamp(value, tz=dt.UTC)
    return exact_text(value)


@register.filter
def when(value):
    """A <time> showing "3 min ago" once the page's script runs; the exact time (with zone) is
    its text without JavaScript and its title on hover."""
    if value in (None, ""):
        return EMPTY
    if isinstance(value, (int, float)):
        value = dt.datetime.fromtimestamp(value, tz=dt.UTC)
    text = exact_text(value)
    return format_html('<time datetime="{}" title="{}" data-relative>{}</time>', value.isoformat(), text, text)


def duration_text(seconds: float) -> str:
    s = max(0, int(seconds))
    hours, rest = divmod(s, 3600)
    minutes, s = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {s} s"
    return f"{s} s"


@register.simple_tag
def duration(started, finished=None):
    """How long something took; while it runs (no finish yet), a span the browser counts up."""
    if started is None:
        return EMPTY
    if finished is None:
        now = timezone.now()
        return format_html('<span data-since="{}" title="running since {}">{}</span>',
                           started.isoformat(), exact_text(started), duration_text((now - started).total_seconds()))
    return duration_text((finished - started).total_seconds())


@register.filter
def seconds(value):
    """A number of seconds as a duration."""
    if value in (None, ""):
        return EMPTY
    return duration_text(float(value))


_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]


@register.filter
def bytesize(value):
    """1536 -> 1.5 KiB."""
    if value in (None, ""):
        return EMPTY
    try:
        size = float(value)
    except (TypeError, ValueError):
        return value
    unit = 0
    while abs(size) >= 1024 and unit < len(_UNITS) - 1:
        size /= 1024
        unit += 1
    return f"{size:.0f} {_UNITS[unit]}" if unit == 0 or size >= 100 else f"{size:.1f} {_UNITS[unit]}"


@register.filter
def mib(value):
    """A size given in MiB, formatted (512 -> 512 MiB, 2048 -> 2.0 GiB)."""
    if value in (None, ""):
        return EMPTY
    try:
        return bytesize(float(value) * 1024 * 1024)
    except (TypeError, ValueError):
        return value


@register.filter
def cores(value):
    """0.25 -> 0.25 cores, 0.1 -> 100m cores (millicores below one core), 2 -> 2 cores."""
    if value in (None, ""):
        return EMPTY
    try:
        n = float(value)
    except (TypeError, ValueError):
        return value
    if 0 < n < 1:
        return f"{round(n * 1000)}m cores"
    text = f"{n:.2f}".rstrip("0").rstrip(".")
    return f"{text} core" if text == "1" else f"{text} cores"


@register.filter
def dash(value):
    """None or an empty string shows as a dash, never as "None"."""
    return EMPTY if value is None or value == "" else value


# Model names as audit events and the CMDB record them, in words.
KINDS = {
    "pipelinerun": "pipeline run", "taskrun": "task run", "pipelinedefinition": "pipeline definition",
    "projectconfig": "project config", "branchrule": "branch rule", "apitoken": "API token",
    "configurationitem": "configuration item", "addoninstance": "addon instance",
}


@register.filter
def human_kind(value):
    """pipelinerun -> pipeline run."""
    if value in (None, ""):
        return EMPTY
    return KINDS.get(str(value).lower(), str(value).replace("_", " "))


def _cell(key: str, value):
    if value is None or value == "":
        return EMPTY
    if isinstance(value, bool):
        return "yes" if value else "no"
    last = key.rsplit(".", 1)[-1].lower()
    if isinstance(value, (int, float)):
        if last.endswith("bytes"):
            return bytesize(value)
        if last in ("cpu", "cores", "cpu_request", "cpu_limit", "cpu_requests", "cpu_limits") or last.endswith("_cores"):
            return cores(value)
        if last in ("mem", "memory", "mem_request", "mem_limit") or last.endswith("_mib"):
            return mib(value)
    if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        return ", ".join(str(v) for v in value) or EMPTY
    return value


def _flatten(prefix: str, value, rows: list) -> None:
    if isinstance(value, dict) and value:
        for key in sorted(value):
            _flatten(f"{prefix}.{key}" if prefix else str(key), value[key], rows)
    elif isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        for i, item in enumerate(value):
            _flatten(f"{prefix}.{i}", item, rows)
    else:
        rows.append((prefix, _cell(prefix, value)))


@register.filter
def attribute_rows(attributes):
    """A nested mapping as (dotted key, formatted value) rows: the CMDB's attributes as a table."""
    rows: list = []
    _flatten("", attributes or {}, rows)
    return rows
