"""What other apps call: persist a task run's lines (then push them), read them back, expire them."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone

from apps.logs import ansi, push, store
from apps.logs.models import LogChunk
from apps.logs.store import Entry, Line

__all__ = ["Entry", "Line", "append_many_task_lines", "append_task_lines", "expire_logs", "read_task_lines", "task_log_text", "task_panel_context"]

# A browser without JavaScript gets the first and the last lines in the page, and a download link
# for the rest: a 100,000-line log must not become 15 MB of HTML.
NOSCRIPT_HEAD = 100
NOSCRIPT_TAIL = 100


def append_task_lines(task_run_id: int, first: int, entries: list[Entry]) -> None:
    """Store lines numbered first.. of a task run and push them after the commit. Call it inside
    the transaction that moved TaskRun.last_line past them (that is what makes the numbers yours)."""
    append_many_task_lines([(task_run_id, first, entries)])


def append_many_task_lines(items: list[tuple[int, int, list[Entry]]]) -> None:
    """append_task_lines for several task runs ((id, first, entries) each) in one insert."""
    store.append_many(items)
    for task_run_id, first, entries in items:
        push.lines_saved(task_run_id, [[first + i, e[0], e[1], e[3]] for i, e in enumerate(entries)])


def read_task_lines(task_run_id: int, after: int = 0, limit: int | None = None) -> list[Line]:
    return store.read(task_run_id, after, limit)


def task_log_text(task_run_id: int):
    return store.iter_text(task_run_id)


def retention_days() -> int:
    return int(getattr(settings, "DICE_LOG_RETENTION_DAYS", 30) or 0)


def expire_logs(now: dt.datetime | None = None) -> int:
    """Delete the logs of task runs finished more than DICE_LOG_RETENTION_DAYS ago (0 keeps all);
    returns the number of chunks deleted. Running ones are never touched."""
    days = retention_days()
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - dt.timedelta(days=days)
    deleted, _ = LogChunk.objects.filter(task_run__finished__lt=cutoff).delete()
    return deleted


def task_panel_context(task) -> dict:
    """What templates/logs/_panel.html needs to show a task run's log (the live part comes over /ws/logs/)."""
    from django.urls import reverse

    head = store.read(task.pk, 0, NOSCRIPT_HEAD)
    shown_to = head[-1].number if head else 0
    tail = []
    if task.last_line > shown_to:
        tail = store.read(task.pk, max(shown_to, task.last_line - NOSCRIPT_TAIL), NOSCRIPT_TAIL)
    omitted = (tail[0].number - shown_to - 1) if tail else max(0, task.last_line - shown_to)
    return {
        "log_stream": f"task:{task.pk}",
        "log_download": reverse("logs:task_raw", args=[task.pk]),
        "log_noscript": [(line.number, line.stream, ansi.to_html(line.text)) for line in head],
        "log_noscript_tail": [(line.number, line.stream, ansi.to_html(line.text)) for line in tail],
        "log_omitted": omitted,
        "log_truncated": omitted > 0,
    }
