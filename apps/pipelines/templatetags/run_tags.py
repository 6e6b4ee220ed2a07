"""The task rows of the run page, rendered in Python: a 1,000-task run's table through the
template engine (an include, a dozen tags and filters per row) took ~200 ms; the same HTML
built here takes a few milliseconds (bench/bench_pages.py). The row's markup is the one place
it is written: the page, its ?partial= refresh and the ?rows= fetch of run.js all use this tag."""

from __future__ import annotations

from html import escape as _escape

from django import template
from django.middleware.csrf import get_token
from django.urls import reverse
from django.utils.safestring import mark_safe

from apps.pipelines.choices import TaskStatus
from dice_console.templatetags.dice_format import EMPTY, duration, seconds, when

register = template.Library()

# What a row (and the graph, apps/pipelines/dag.py) shows of a task: read as tuples, without a
# model instance per task (a 1,000-task run's instances cost the page more than its HTML).
ROW_FIELDS = ("pk", "alias", "type", "status", "reason", "review", "needs", "params", "outputs", "attempt",
              "max_attempts", "started", "finished", "last_line", "job_name", "cluster")


class TaskRow:
    """One task as the run page shows it."""

    __slots__ = (*ROW_FIELDS, "engine")

    def __init__(self, *values) -> None:
        for name, value in zip(ROW_FIELDS, values, strict=True):
            setattr(self, name, value)
        self.engine: dict | None = None  # a data action's application, as its engine tells (steps.engine_details)

    @property
    def duration(self) -> float | None:
        if self.started and self.finished:
            return (self.finished - self.started).total_seconds()
        return None


def rows_of(tasks) -> list[TaskRow]:
    """The rows of a TaskRun queryset, in its order."""
    return [TaskRow(*values) for values in tasks.values_list(*ROW_FIELDS)]


def esc(value) -> str:
    """HTML-escaped text (Django's escape without its lazy-string wrapper: ~10 calls a row)."""
    return _escape(str(value))

_STATUS_LABELS = dict(TaskStatus.choices)
_PLACEHOLDER = 999999999  # a pk reversed once; each row's own pk replaces it


def _codes(values: dict) -> str:
    if not values:
        return EMPTY
    return "".join(f"<code>{esc(k)}={esc(v)}</code> " for k, v in values.items())


def _engine(engine: dict) -> str:
    """A `spark` step's application on its cluster: id, state and a link to the Spark UI."""
    if engine.get("application_id"):
        link = (f' · <a href="{esc(engine["ui"])}" rel="noopener" target="_blank">Spark UI</a>'
                if engine.get("ui") else "")
        return f'Spark application <code>{esc(engine["application_id"])}</code> {esc(engine.get("state", ""))}{link}'
    if engine.get("error"):
        return f'<span class="muted">Spark: {esc(engine["error"])}</span>'
    if engine.get("driver_id"):
        return f'Spark driver <code>{esc(engine["driver_id"])}</code>'
    return ""


@register.simple_tag(takes_context=True)
def task_rows(context, tasks) -> str:
    """<tr id="task-ALIAS"> for each task: alias and needs, type, status (with the review
    buttons of a task awaiting review, for who may review), attempt, params, outputs, start,
    duration, log lines."""
    run, app = context["run"], context["app"]
    org, project = app.project.organization.slug, app.project.slug
    can_review = context.get("can_review")
    log_url = reverse("pipelines:task_log", args=[org, project, app.slug, _PLACEHOLDER])
    head, _, tail = log_url.partition(str(_PLACEHOLDER))
    action = None
    out = []
    for t in tasks:
        alias = esc(t.alias)
        needs = f"<br><small>needs {esc(', '.join(t.needs))}</small>" if t.needs else ""
        status = f'<span class="status status-{esc(t.status)}">{esc(_STATUS_LABELS.get(t.status, t.status))}</span>'
        if t.reason:
            status += f"<br><small>{esc(t.reason)}</small>"
        if t.engine:
            status += f'<br><small class="engine-app" id="engine-{alias}">{_engine(t.engine)}</small>'
        if can_review and t.status == "running" and (
            t.type == "manual-review" or (t.type == "dice" and (t.outputs or {}).get("awaiting_review") and not t.review)
        ):
            if action is None:
                token = esc(get_token(context["request"]))
                base = reverse("pipelines:run_action", args=[org, project, app.slug, run.pk, "approve"])
                action = (token, base, base[: -len("approve/")] + "reject/")
            token, approve, reject = action
            csrf = f'<input type="hidden" name="csrfmiddlewaretoken" value="{token}">'
            status += (
                f'\n      <form class="inline" method="post" action="{esc(approve)}">{csrf}<input type="hidden" '
                f'name="task" value="{alias}"><button type="submit">Approve</button></form>'
                f'\n      <form class="inline" method="post" action="{esc(reject)}" data-confirm="Reject {alias}? '
                f'The run fails at this step.">{csrf}<input type="hidden" name="task" value="{alias}">'
                f'<button class="contrast" type="submit">Reject</button></form>'
            )
        if t.duration is not None:
            took = seconds(t.duration)
        elif t.started and t.status == "running":
            took = duration(t.started)
        else:
            took = EMPTY
        lines = (f'<a href="{esc(head)}{t.pk}{esc(tail)}">{t.last_line} line{"" if t.last_line == 1 else "s"}</a>'
                 if t.last_line else EMPTY)
        out.append(
            f'<tr id="task-{alias}">\n'
            f"    <td><strong>{alias}</strong>{needs}</td>\n"
            f"    <td>{esc(t.type)}</td>\n"
            f"    <td>{status}</td>\n"
            f"    <td>{t.attempt}/{t.max_attempts}</td>\n"
            f"    <td>{_codes(t.params)}</td>\n"
            f"    <td>{_codes(t.outputs)}</td>\n"
            f"    <td>{when(t.started)}</td>\n"
            f"    <td>{took}</td>\n"
            f"    <td>{lines}</td>\n"
            "  </tr>"
        )
    return mark_safe("".join(out))
