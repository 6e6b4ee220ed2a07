"""Table columns every list shares: times in the one format (relative, exact on hover), durations;
and django-tables2's signature lookups made once per function instead of once per cell."""

import types

import django_tables2 as tables
from django_tables2 import utils as _tables_utils

from dice_console.templatetags.dice_format import duration, when

_signature = _tables_utils.signature
_signatures: dict[tuple, tuple] = {}


def _cached_signature(fn):
    """django_tables2.utils.signature, remembered per code object. django-tables2 asks it for every
    render_* method and linkify callable of every cell (inspect.signature each time): ~5 ms of the
    ~25 ms of CPU of a 25-row, 8-column page. The arguments' names and kinds are the code's, so the
    code object is the key (a closure made per request shares its code: the cache stays bounded);
    a bound method drops its first argument as inspect does. Anything else (a partial, a callable
    object, a wrapped function) is asked every time, as before."""
    bound = isinstance(fn, types.MethodType)
    func = fn.__func__ if bound else fn
    if not isinstance(func, types.FunctionType) or hasattr(func, "__wrapped__") or hasattr(fn, "__signature__"):
        return _signature(fn)
    key = (func.__code__, bound)
    found = _signatures.get(key)
    if found is None:
        found = _signatures[key] = _signature(fn)
    return found


# call_with_appropriate looks `signature` up in its module at each call: replacing it there is enough.
_tables_utils.signature = _cached_signature


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
