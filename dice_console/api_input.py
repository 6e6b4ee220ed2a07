"""What the API reads from a request: pagination, strict integer filters and the JSON parser.

Kept apart from dice_console.api because DRF's settings import these classes while DRF's views
and generics are still being imported."""

from __future__ import annotations

import django_filters
from django import forms
from django.conf import settings
from django.db import models
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.utils import get_model_field
from drf_spectacular.utils import extend_schema_field
from rest_framework import exceptions, parsers
from rest_framework.pagination import LimitOffsetPagination

from dice_console.paging import page_of

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


# ---- pagination --------------------------------------------------------------------------------


def max_page_size() -> int:
    return int(getattr(settings, "DICE_API_MAX_PAGE_SIZE", 1000))


class Pagination(LimitOffsetPagination):
    """`limit` (1 to DICE_API_MAX_PAGE_SIZE, default PAGE_SIZE) and `offset` (>= 0). Anything else is a
    400 naming the parameter, rather than a silent default or a database overflow."""

    def get_limit(self, request):
        raw = request.query_params.get(self.limit_query_param)
        if raw is None or raw == "":
            return self.default_limit
        most = max_page_size()
        if not _is_int(raw) or not 1 <= int(raw) <= most:
            raise exceptions.ValidationError(
                {self.limit_query_param: [f"a whole number from 1 to {most} (the page-size limit); "
                                          "read further pages with offset"]})
        return int(raw)

    def get_offset(self, request):
        raw = request.query_params.get(self.offset_query_param)
        if raw is None or raw == "":
            return 0
        if not _is_int(raw) or not 0 <= int(raw) <= INT64_MAX:
            raise exceptions.ValidationError({self.offset_query_param: [f"a whole number from 0 to {INT64_MAX}"]})
        return int(raw)

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.limit = self.get_limit(request)
        if self.limit is None:
            return None
        self.count = self.get_count(queryset)
        self.offset = self.get_offset(request)
        if self.count > self.limit and self.template is not None:
            self.display_page_controls = True
        if self.count == 0 or self.offset > self.count:
            return []
        return list(page_of(queryset, self.offset, self.offset + self.limit))

    def get_schema_operation_parameters(self, view):
        params = super().get_schema_operation_parameters(view)
        for param in params:
            if param["name"] == self.limit_query_param:
                param["schema"].update(minimum=1, maximum=max_page_size())
                param["description"] = f"Number of results per page (at most {max_page_size()})."
            elif param["name"] == self.offset_query_param:
                param["schema"].update(minimum=0, maximum=INT64_MAX)
        return params


def digits(text: str) -> bool:
    """Only ASCII digits: str.isdigit() also takes '³' and '①', which int() refuses (a 500 where
    a request's id or number was checked that way)."""
    return text.isascii() and text.isdigit()


def _is_int(raw: str) -> bool:
    text = raw.strip()
    return bool(text) and digits(text[1:] if text[0] in "+-" else text) and len(text) <= 25


# ---- filters -------------------------------------------------------------------------------------


class Int64Field(forms.IntegerField):
    """A whole number that fits a database integer: `1e20`, `1.5` and 2**63 are refused."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", INT64_MIN)
        kwargs.setdefault("max_value", INT64_MAX)
        super().__init__(**kwargs)

    def to_python(self, value):
        if isinstance(value, str) and value.strip() and not _is_int(value):
            raise forms.ValidationError("a whole number (no decimals or exponent)", code="invalid")
        return super().to_python(value)


@extend_schema_field({"type": "integer", "format": "int64"})
class IntegerFilter(django_filters.NumberFilter):
    """A filter on an id or another integer column."""

    field_class = Int64Field


_INTEGER_FIELDS = (models.IntegerField, models.AutoField)


def _targets_integer(filterset_class, f) -> bool:
    model = filterset_class._meta.model
    if model is None or not f.field_name or f.method is not None:
        return False
    try:
        field = get_model_field(model, f.field_name)
    except Exception:
        return False
    if isinstance(field, models.ForeignKey):
        field = field.target_field
    return isinstance(field, _INTEGER_FIELDS)


_strict_classes: dict[type, type] = {}


def strict_filterset(filterset_class):
    """The filterset with every number filter on an integer column made an IntegerFilter."""
    if filterset_class is None:
        return None
    if filterset_class not in _strict_classes:
        replaced = {}
        for name, f in filterset_class.base_filters.items():
            if type(f) is django_filters.NumberFilter and _targets_integer(filterset_class, f):
                replaced[name] = IntegerFilter(field_name=f.field_name, lookup_expr=f.lookup_expr,
                                               label=f.label, exclude=f.exclude, distinct=f.distinct)
        _strict_classes[filterset_class] = (
            type(filterset_class.__name__, (filterset_class,), {**replaced, "__module__": filterset_class.__module__})
            if replaced else filterset_class)
    return _strict_classes[filterset_class]


class FilterBackend(DjangoFilterBackend):
    """django-filter with integer filters that refuse what a database column cannot hold (a 400
    naming the parameter, where a plain NumberFilter passed `1e20` on to the database)."""

    def get_filterset_class(self, view, queryset=None):
        return strict_filterset(super().get_filterset_class(view, queryset))


# ---- parsing -------------------------------------------------------------------------------------


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser; a document nested deeper than Python can follow is a 400, not a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - the document is nested too deeply") from None
