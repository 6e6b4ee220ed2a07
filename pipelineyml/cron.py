"""Validation of pipeline `cron` expressions: 5 fields, 6 with seconds (Quartz style), 7 with a year."""

from __future__ import annotations

import re
from dataclasses import dataclass

MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")

DESCRIPTORS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_EVERY = re.compile(r"^@every\s+((\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+)$")


@dataclass(frozen=True)
class CronField:
    """One position of a cron expression, with its allowed range and names."""

    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    names_start: int = 0


SECOND = CronField("second", 0, 59)
MINUTE = CronField("minute", 0, 59)
HOUR = CronField("hour", 0, 23)
DAY_OF_MONTH = CronField("day of month", 1, 31)
MONTH = CronField("month", 1, 12, MONTH_NAMES, 1)
DAY_OF_WEEK = CronField("day of week", 0, 7, DAY_NAMES, 0)  # 0 and 7 are both Sunday
YEAR = CronField("year", 1970, 2099)

LAYOUTS: dict[int, tuple[CronField, ...]] = {
    5: (MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK),
    6: (SECOND, MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK),
    7: (SECOND, MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK, YEAR),
}


def _value(text: str, field: CronField) -> int:
    """A number or a name of `field`; raises ValueError with a readable message."""
    if text.isdigit():
        number = int(text)
    elif text.upper() in field.names:
        number = field.names.index(text.upper()) + field.names_start
    else:
        names = f" or a name ({field.names[0]}..{field.names[-1]})" if field.names else ""
        raise ValueError(f"'{text}' is not a number{names}")
    if not field.low <= number <= field.high:
        raise ValueError(f"{number} is out of range {field.low}-{field.high}")
    return number


def _check_item(item: str, field: CronField) -> None:
    base, slash, step = item.partition("/")
    if slash and (not step.isdigit() or int(step) == 0):
        raise ValueError(f"step '{step}' in '{item}' must be a positive number")
    if base in ("*", "?"):
        return
    if not base:
        raise ValueError(f"empty value in '{item}'")
    low_text, dash, high_text = base.partition("-")
    low = _value(low_text, field)
    if dash:
        high = _value(high_text, field)
        if high < low:
            raise ValueError(f"range '{base}' runs backwards")


def cron_problems(expression: str) -> list[str]:
    """Messages describing what is wrong with `expression`; empty when it is valid.

    `?` means "any" in every field (as Erda's cron library reads it), so Quartz-style
    expressions such as `0 0 13,17,20 * * ?` are accepted.
    """
    text = expression.strip()
    if not text:
        return ["cron expression is empty"]
    if text.startswith("@"):
        if text in DESCRIPTORS or _EVERY.match(text):
            return []
        known = ", ".join(sorted(DESCRIPTORS))
        return [f"unknown cron descriptor '{text}' (expected one of {known}, or '@every <duration>')"]
    fields = text.split()
    layout = LAYOUTS.get(len(fields))
    if layout is None:
        return [
            f"cron expression '{text}' has {len(fields)} fields; expected 5 "
            "(minute hour day-of-month month day-of-week) or 6 (with seconds first)"
        ]
    problems = []
    for position, (part, field) in enumerate(zip(fields, layout, strict=True), start=1):
        for item in part.split(","):
            try:
                _check_item(item, field)
            except ValueError as exc:
                problems.append(f"cron field {position} ({field.name}) '{part}': {exc}")
                break
    return problems
