"""Table columns every list shares: times in the one format (relative, exact on hover), durations."""

import django_tables2 as tables

from dice_console.templatetags.dice_format import duration, when


class WhenColumn(tables.Column):
    """A time shown as "3 min ago", the exact time with its zone on hover."""

    def render(self, value):
        return when(value)


class DurationColumn(tables.Column):
    """How long a row's work took (started..finished), counting up while it runs."""

    def __init__(self, start="started", end="finished", **kwargs):
        kwargs.setdefault("orderable", False)
        kwargs.setdefault("empty_values", ())
        super().__init__(**kwargs)
        self.start, self.end = start, end

    def render(self, record):
        return duration(getattr(record, self.start), getattr(record, self.end))
