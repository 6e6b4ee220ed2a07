"""django-tables2 asks the signature of every render_* method and linkify callable for every cell;
dice_console.columns remembers it per code object (the deployments page spent ~5 ms of its ~25 ms
of CPU in inspect.signature). The cells must come out the same, and the cache stay bounded."""

import inspect
from unittest import mock

import django_tables2 as tables
from django.test import RequestFactory
from django_tables2 import utils

from dice_console import columns


class Row:
    def __init__(self, n):
        self.n, self.name = n, f"row{n}"


class NumberTable(tables.Table):
    n = tables.Column(linkify=lambda record: f"/rows/{record.n}/")
    name = tables.Column()
    double = tables.Column(accessor="n", empty_values=())

    def render_name(self, value, record):
        return f"{value}:{record.n}"

    def render_double(self, record, **kwargs):  # a catch-all gets every argument
        return record.n * 2 + len(kwargs) * 0


def _html(rows):
    table = NumberTable(rows)
    tables.RequestConfig(RequestFactory().get("/")).configure(table)
    return table.as_html(RequestFactory().get("/"))


def test_cells_render_the_same_and_each_signature_is_read_once():
    assert utils.signature is columns._cached_signature  # installed by importing the tables' columns
    columns._signatures.clear()
    with mock.patch.object(inspect, "signature", wraps=inspect.signature) as spied:
        html = _html([Row(i) for i in range(30)])
    assert 'href="/rows/7/"' in html and "row7:7" in html and ">14</td>" in html
    # four callables (the linkify lambda, render_name, render_double, Column.render of `n`), once each
    assert spied.call_count == 4, spied.call_count
    with mock.patch.object(utils, "signature", columns._signature), \
            mock.patch.object(inspect, "signature", wraps=inspect.signature) as uncached:  # django-tables2's own
        assert _html([Row(i) for i in range(30)]) == html
    assert uncached.call_count >= 3 * 30  # without the cache: at least once per cell


def test_the_cache_is_keyed_by_code_so_closures_made_per_call_do_not_grow_it():
    def make(k):
        return lambda record, value: (record, value, k)

    columns._signatures.clear()
    for k in range(100):
        assert columns._cached_signature(make(k)) == (("record", "value"), None)
    assert len(columns._signatures) == 1


def test_callables_it_cannot_key_are_asked_every_time():
    import functools

    def f(a, b, **rest):
        return a

    partial = functools.partial(f, 1)
    columns._signatures.clear()
    assert columns._cached_signature(partial) == (("b",), "rest")
    assert columns._signatures == {}
