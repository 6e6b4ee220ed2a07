"""A page of a long list read in two steps: the page's ids first, from the filter and order alone
(an index serves them, even far down the list), then the rows of those ids with their joins.
Sorting or skipping whole joined rows (a deployment with its release's spec, an audit event with
its JSON) cost more than the index walk itself. The ids are handed over as literals: as an
IN-subquery with LIMIT, PostgreSQL's planner guessed the whole table and joined every row first."""

from __future__ import annotations

from django.db.models import QuerySet


def page_of(queryset, start: int, stop: int):
    """queryset[start:stop]: the same rows in the same order, read by id."""
    if not isinstance(queryset, QuerySet) or queryset.query.combinator or queryset.query.is_sliced \
            or not queryset.ordered:
        return queryset[start:stop]
    ids = list(queryset.values_list("pk", flat=True)[start:stop])
    if not ids:
        return []
    rows = {row.pk: row for row in queryset.order_by().filter(pk__in=ids)}
    return [rows[pk] for pk in ids if pk in rows]
