"""One way to move long-lived work through its states, shared by deployments, pipeline runs and
task runs (ARCHITECTURE.md: "an explicit state machine with an allowed-transitions table and a
transition history").

A `Machine` names a model, its history model and its allowed-transitions table. Every move:

1. is checked against the table (`IllegalTransition` otherwise: one exception for every machine,
   a ValidationError, so the API answers 400 with the reason);
2. locks the rows it moves with one locking read (`lock()`: SELECT ... FOR UPDATE in id order;
   SQLite's IMMEDIATE transactions already exclude other writers) and compares what it read
   with what the caller expects: a row that moved meanwhile is left alone (someone else won);
3. writes the status (and the fields that go with it) and one history row per move, in bulk,
   announcing each history row with post_save as a `.create()` would (listeners such as the log
   stream's end-of-log push hear every move the same way);
4. pushes what the machine's `push` makes of the move to its Channels group after the commit
   (`push_after_commit`), never before: a viewer never hears of a change that was rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, models, transaction
from django.db.models.signals import post_save

log = logging.getLogger(__name__)


class IllegalTransition(ValidationError):
    """A status change the state machine does not allow (e.g. a finished deployment deploying)."""

    def __init__(self, message: str):
        super().__init__({"status": [message]})
        self.text = message

    def __str__(self) -> str:
        return self.text


def check(table: dict, what: str, current: str, to: str) -> None:
    """IllegalTransition unless `table` allows `what` to go from `current` to `to`."""
    if to not in table.get(current, frozenset()):
        allowed = ", ".join(sorted(table.get(current, ()))) or "nothing (it is finished)"
        raise IllegalTransition(f"{what} cannot go from {current} to {to}; from {current} it may go to {allowed}")


def push_after_commit(group: str, payload: dict) -> None:
    """Send `payload` to the Channels group once the surrounding transaction commits (at once
    outside one). A lost push never fails the work: viewers re-read what they missed."""

    def send() -> None:
        from dice_console.realtime import group_send

        group_send(group, payload)

    transaction.on_commit(send)


def lock(model: type[models.Model], pks: Iterable[int], fields: Iterable[str] = ("status",)) -> dict[int, dict]:
    """Lock these rows for the rest of the caller's transaction, in id order (so two movers never
    deadlock), and return {pk: {field: value}} as the database has them now."""
    # Written as SQL: compiling the queryset cost more than running it (a step's end and its
    # successor's claim each take one).
    meta, quote = model._meta, connection.ops.quote_name
    columns = [meta.pk, *(meta.get_field(name) for name in fields)]
    ids = sorted(set(pks))
    if not ids:
        return {}
    sql = (f"SELECT {', '.join(quote(f.column) for f in columns)} FROM {quote(meta.db_table)} "
           f"WHERE {quote(meta.pk.column)} IN ({', '.join(['%s'] * len(ids))}) ORDER BY {quote(meta.pk.column)}"
           + (" FOR UPDATE" if connection.features.has_select_for_update else ""))
    with connection.cursor() as cursor:
        cursor.execute(sql, ids)
        rows = cursor.fetchall()
    return {meta.pk.to_python(row[0]): {f.name: f.to_python(value) for f, value in zip(columns[1:], row[1:], strict=True)}
            for row in rows}


def _insert(rows: list[models.Model]) -> list[models.Model]:
    """bulk_create() of history rows, as one INSERT ... RETURNING written from the model's
    metadata (each field's pre_save and database value, as bulk_create takes them): compiling
    the insert cost more than running it, twice at every step of a pipeline. Falls back to
    bulk_create where rows cannot be returned or would pass the database's parameter limit."""
    if not rows:
        return rows
    model = type(rows[0])
    meta, quote = model._meta, connection.ops.quote_name
    fields = [f for f in meta.concrete_fields if f is not meta.pk]
    limit = connection.features.max_query_params or 0
    if not connection.features.can_return_rows_from_bulk_insert or (limit and len(rows) * len(fields) > limit):
        return model.objects.bulk_create(rows)
    values = [[f.get_db_prep_save(f.pre_save(row, True), connection) for f in fields] for row in rows]
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
                       f"VALUES {', '.join([one] * len(rows))} RETURNING {quote(meta.pk.column)}",
                       [value for row in values for value in row])
        ids = [found[0] for found in cursor.fetchall()]
    for row, pk in zip(rows, ids, strict=True):
        row.pk = pk
        row._state.adding, row._state.db = False, connection.alias
    return rows


@dataclass
class Move:
    """One row to move: `obj` (a model instance or anything with pk and the expected fields),
    where to, why, the fields to set with it, and the history row's extra values."""

    obj: Any
    to: str
    reason: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    history: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Machine:
    """The state machine of one model: its table, its history model and how a move is pushed."""

    model: type[models.Model]
    history_model: type[models.Model]
    history_fk: str  # the history model's foreign key to `model`, e.g. "deployment"
    table: dict[str, frozenset[str]]
    describe: Callable[[Any], str]  # "deployment #3", "task build": what the error names
    # Fields that must still hold what the caller read for the move to happen (compare-and-set);
    # "status" always is one.
    expect: tuple[str, ...] = ("status",)
    reason_limit: int = 2000
    # (moved object, from, to, reason) -> (group, payload) to push after commit, or None.
    push: Callable[[Any, str, str, str], tuple[str, dict] | None] | None = None
    # Or one call for all the rows one transaction moved -> [(group, payload)]: a wide stage's
    # 100 moves are one push per viewer group, not 100 (each push is a trip to the event loop).
    push_many: Callable[[list[tuple[Any, str, str, str]]], list[tuple[str, dict]]] | None = None

    def check(self, obj: Any, to: str, current: str | None = None) -> None:
        check(self.table, self.describe(obj), obj.status if current is None else current, to)

    def move(self, obj: Any, to: str, reason: str = "", fields: dict | None = None) -> bool:
        """Move one row from the status the caller read into `obj`; see move_many."""
        return bool(self.move_many([Move(obj, to, reason, dict(fields or {}))]))

    def move_many(self, moves: list[Move], *, locked: dict[int, dict] | None = None,
                  write: Callable[[list[Move]], None] | None = None) -> list[Any]:
        """Move every row whose expected fields still hold what its object carries, in one
        transaction: one locking read, one UPDATE per distinct set of values, the history rows in
        bulk (each announced by post_save), and the pushes after commit. Rows that moved meanwhile
        are skipped. IllegalTransition (nothing written) when a move is not allowed. Returns the
        objects that moved, with their new values set. `write` replaces the default writer (one
        UPDATE per distinct set of values) for callers with a faster one."""
        if not moves:
            return []
        for m in moves:
            self.check(m.obj, m.to)
        # No savepoint inside a caller's transaction: what fails here fails the caller's too.
        with transaction.atomic(savepoint=False):
            if locked is None:
                locked = lock(self.model, [m.obj.pk for m in moves], self.expect)
            moved = [m for m in moves if locked.get(m.obj.pk) == {f: getattr(m.obj, f) for f in self.expect}]
            if not moved:
                return []
            (write or self._write)(moved)
            history = _insert([
                self.history_model(**{
                    f"{self.history_fk}_id": m.obj.pk, "from_status": m.obj.status, "to_status": m.to,
                    "reason": (m.reason or "")[: self.reason_limit], **m.history,
                })
                for m in moved
            ])
            for row in history:  # what a .create() announces
                post_save.send(sender=self.history_model, instance=row, created=True, update_fields=None,
                               raw=False, using=connection.alias)
            for m in moved:
                if self.push is not None:
                    pushed = self.push(m.obj, m.obj.status, m.to, m.reason)
                    if pushed is not None:
                        push_after_commit(*pushed)
            if self.push_many is not None:
                for pushed in self.push_many([(m.obj, m.obj.status, m.to, m.reason) for m in moved]):
                    push_after_commit(*pushed)
        for m in moved:
            m.obj.status = m.to
            for name, value in m.fields.items():
                setattr(m.obj, name, value)
        return [m.obj for m in moved]

    def _write(self, moved: list[Move]) -> None:
        """One UPDATE per group of moves that set the same values (a wide stage's claim is one)."""
        groups: dict[tuple, list[int]] = {}
        values: dict[tuple, dict] = {}
        for m in moved:
            changes = {"status": m.to, **m.fields}
            key = tuple(sorted((k, repr(v)) for k, v in changes.items()))
            groups.setdefault(key, []).append(m.obj.pk)
            values[key] = changes
        meta, quote = self.model._meta, connection.ops.quote_name
        with connection.cursor() as cursor:
            for key, pks in groups.items():  # as QuerySet.update() writes them, without its compiling
                fields = [meta.get_field(name) for name in values[key]]
                if any(f.is_relation or hasattr(values[key][f.name], "resolve_expression") for f in fields):
                    self.model.objects.filter(pk__in=pks).update(**values[key])  # the ORM resolves those
                    continue
                cursor.execute(
                    f"UPDATE {quote(meta.db_table)} SET " + ", ".join(f"{quote(f.column)} = %s" for f in fields)
                    + f" WHERE {quote(meta.pk.column)} IN ({', '.join(['%s'] * len(pks))})",
                    [f.get_db_prep_save(values[key][f.name], connection) for f in fields] + list(pks))
