"""A small 5-field cron: parse an expression and find the minutes it fires (local time)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from scheduler.base import ExecutorError

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_NAMES = {
    3: {m: i for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)},
    4: {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])},
}
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
MAX_LOOKBACK = 24 * 60  # minutes: a console down longer than a day does not replay older runs


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day-of-month was `*`
    any_weekday: bool

    def matches(self, when: dt.datetime) -> bool:
        if when.minute not in self.minutes or when.hour not in self.hours or when.month not in self.months:
            return False
        day_ok = when.day in self.days
        weekday_ok = (when.isoweekday() % 7) in self.weekdays
        # Classic cron: when both day fields are restricted, either one may match.
        if self.any_day and self.any_weekday:
            return True
        if self.any_day:
            return weekday_ok
        if self.any_weekday:
            return day_ok
        return day_ok or weekday_ok


def parse_cron(expression: str) -> Cron:
    text = ALIASES.get(expression.strip().lower(), expression)
    fields = text.split()
    if len(fields) != 5:
        raise ExecutorError(f"schedule must have 5 fields, got {expression!r}")
    sets = [_field(f, i, expression) for i, f in enumerate(fields)]
    weekdays = frozenset(d % 7 for d in sets[4])
    return Cron(
        minutes=sets[0],
        hours=sets[1],
        days=sets[2],
        months=sets[3],
        weekdays=weekdays,
        any_day=fields[2] in ("*", "?"),
        any_weekday=fields[4] in ("*", "?"),
    )


def _field(text: str, index: int, expression: str) -> frozenset[int]:
    low, high = _RANGES[index]
    out: set[int] = set()
    for part in text.lower().split(","):
        base, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if base in ("*", "?"):
                start, end = low, high
            elif "-" in base:
                a, b = base.split("-", 1)
                start, end = _value(a, index), _value(b, index)
            else:
                start = _value(base, index)
                end = high if step_text else start
        except ValueError:
            raise ExecutorError(f"cannot read {part!r} in schedule {expression!r}")
        if step < 1 or not (low <= start <= high and low <= end <= high) or start > end:
            raise ExecutorError(f"{part!r} is out of range {low}-{high} in schedule {expression!r}")
        out.update(range(start, end + 1, step))
    return frozenset(out)


def _value(text: str, index: int) -> int:
    names = _NAMES.get(index, {})
    return names[text] if text in names else int(text)


def due_minute(cron: Cron, after: float, now: float) -> dt.datetime | None:
    """The latest minute in (after, now] at which cron fires, or None. Times are unix seconds."""
    end = dt.datetime.fromtimestamp(now).replace(second=0, microsecond=0)
    start = dt.datetime.fromtimestamp(after).replace(second=0, microsecond=0)
    minute = end
    for _ in range(MAX_LOOKBACK):
        if minute <= start:
            return None
        if cron.matches(minute):
            return minute
        minute -= dt.timedelta(minutes=1)
    return None
