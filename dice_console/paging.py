"""A page of a long list read in two steps inside one query: the page's ids first, from the
filter and order alone (an index can serve them, even far down the list), then the rows of those
ids with their joins. Sorting or skipping whole joined rows (a deployment with its release's
spec, an audit event with its JSON) cost more than the index walk itself."""

from __future__ import annotations

from django.db.models import QuerySet


def page_of(queryset, start: int, stop: int):
    """queryset[start:stop], its rows read by id (the same rows in the same order)."""
    if not isinstance(queryset, QuerySet) or queryset.query.combinator or queryset.query.is_sliced \
            or not queryset.ordered:
        return queryset[start:stop]
    ids = queryset.values("pk")[start:stop]
    return queryset.filter(pk__in=ids)
