"""Chunked storage of task-run logs: append numbered lines in bulk, read from any line on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from django.db import connection
from django.db.models import OuterRef, Subquery

from apps.logs.models import CHUNK_BYTES, CHUNK_LINES, LogChunk


@dataclass(frozen=True)
class Line:
    number: int
    timestamp: float
    stream: str
    attempt: int
    text: str

    def as_list(self) -> list:
        """The wire form pushed to viewers: [number, timestamp, stream, text]."""
        return [self.number, self.timestamp, self.stream, self.text]


Entry = tuple[float, str, int, str]  # timestamp, stream, attempt, text


TOPUP_LINES = 8  # appends of fewer lines always go into the log's last chunk while it has room
TOPUP_RATIO = 2  # larger ones only while that chunk is at most this many times their size


def _tops_up(tail: LogChunk | None, first: int, entries: list) -> bool:
    """Whether an append fills up the log's last chunk rather than starting one. Topping up
    rewrites the whole chunk (up to CHUNK_BYTES): for 50 streams appending 40 lines at a time that
    cost their tails' size, not their own, so a batch tops up only a chunk at most TOPUP_RATIO
    times its size (the rewrite stays in proportion to what is written; logs stay few rows)."""
    if tail is None or tail.full or tail.last + 1 != first:
        return False
    return len(entries) < TOPUP_LINES or tail.size <= TOPUP_RATIO * sum(len(e[3]) + 16 for e in entries)


def _cost(entry: Entry) -> int:
    return len(entry[3]) + 16


def append(task_run_id: int, first: int, entries: list[Entry]) -> None:
    """Store lines first..first+len-1. The caller owns that range (it moved TaskRun.last_line in the
    same transaction), so no other writer touches the last chunk meanwhile."""
    append_many([(task_run_id, first, entries)])


def append_many(items: list[tuple[int, int, list[Entry]]]) -> None:
    """append() for several task runs ((task run id, first, entries) each), their new chunks
    inserted by one statement: the steps of a wide stage end together. A log's first lines need
    no read of its last chunk: it has none (the range the caller owns starts at line 1)."""
    chunks = []
    # The last chunk of every log that has one, read by one query (not one per task run).
    later = [task_run_id for task_run_id, first, entries in items if entries and first != 1]
    tails: dict[int, LogChunk] = {}
    # Their lines are read only for a tail that is topped up (below), not for every append.
    if len(later) == 1:
        tail = LogChunk.objects.filter(task_run_id=later[0]).defer("lines").order_by("-first").first()
        tails = {later[0]: tail} if tail is not None else {}
    elif later:
        newest = LogChunk.objects.filter(task_run_id=OuterRef("task_run_id")).order_by("-first").values("pk")[:1]
        for chunk in LogChunk.objects.filter(task_run_id__in=later, pk=Subquery(newest)).defer("lines"):
            tails[chunk.task_run_id] = chunk
    # Which tails are topped up, decided on their size (their lines are never read: the database
    # appends to them, all in one round, see _top_up).
    topped = {task_run_id for task_run_id, first, entries in items if entries and _tops_up(tails.get(task_run_id), first, entries)}
    top_ups = []
    for task_run_id, first, entries in items:
        if not entries:
            continue
        entries = [list(e) for e in entries]
        position = 0
        tail = tails.get(task_run_id)
        if tail is not None and tail.last >= first:
            raise ValueError(f"task run {task_run_id}: line {first} is already stored (chunk {tail})")
        if task_run_id in topped:
            size, count = tail.size, tail.last - tail.first + 1
            while position < len(entries) and count < CHUNK_LINES and size < CHUNK_BYTES:
                size += _cost(entries[position])
                count += 1
                position += 1
            top_ups.append((tail.pk, entries[:position], first + position - 1, size))
        while position < len(entries):
            start, size = position, 0
            while position < len(entries) and position - start < CHUNK_LINES and size < CHUNK_BYTES:
                size += _cost(entries[position])
                position += 1
            chunks.append(LogChunk(task_run_id=task_run_id, first=first + start, last=first + position - 1,
                                   size=size, lines=entries[start:position]))
    _top_up(top_ups)
    if chunks:
        LogChunk.objects.bulk_create(chunks)


def _top_up(top_ups: list[tuple[int, list, int, int]]) -> None:
    """Append (chunk id, entries, new last, new size) to those chunks' lines in the database, by
    one statement on PostgreSQL (one executemany on SQLite, in process): reading each tail's lines and writing them
    back whole, one UPDATE per stream, was ~35 of the ~45 ms of storing 50 streams x 40 lines on
    PostgreSQL (bench/bench_logs.py --trace: "stored" held the tail). PostgreSQL concatenates
    the jsonb arrays; SQLite's JSON is text, whose closing bracket gives way to the new items."""
    if not top_ups:
        return
    table = connection.ops.quote_name(LogChunk._meta.db_table)
    lines, last, size, key = (connection.ops.quote_name(LogChunk._meta.get_field(name).column)
                              for name in ("lines", "last", "size", "id"))
    rows = [(pk, json.dumps(entries), new_last, new_size) for pk, entries, new_last, new_size in top_ups]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # one statement for them all
            values = ", ".join(["(CAST(%s AS integer), CAST(%s AS jsonb), CAST(%s AS integer), CAST(%s AS integer))"]
                               * len(rows))
            cursor.execute(f"UPDATE {table} AS c SET {lines} = c.{lines} || v.more, {last} = v.last, {size} = v.size "
                           f"FROM (VALUES {values}) AS v(id, more, last, size) WHERE c.{key} = v.id",
                           [x for row in rows for x in row])
        else:  # a chunk holds at least one line: '[a, b]' + '[c]' -> '[a, b, c]'
            cursor.executemany(f"UPDATE {table} SET {lines} = substr({lines}, 1, length({lines}) - 1) || ', ' || "
                               f"substr(%s, 2), {last} = %s, {size} = %s WHERE {key} = %s",
                               [(more, new_last, new_size, pk) for pk, more, new_last, new_size in rows])


def _lines_of(chunk: LogChunk, after: int) -> Iterator[Line]:
    skip = max(0, after - chunk.first + 1)
    for i, (stamp, stream, attempt, text) in enumerate(chunk.lines[skip:], chunk.first + skip):
        yield Line(i, stamp, stream, attempt, text)


def read(task_run_id: int, after: int = 0, limit: int | None = None) -> list[Line]:
    """Stored lines numbered above `after`, in order, at most `limit` of them."""
    out: list[Line] = []
    chunks = LogChunk.objects.filter(task_run_id=task_run_id, last__gt=after).order_by("first")
    if limit is not None:
        chunks = chunks[: limit + 1]  # a chunk holds at least one line
    for chunk in chunks.iterator(chunk_size=8):
        for line in _lines_of(chunk, after):
            out.append(line)
            if limit is not None and len(out) >= limit:
                return out
    return out


def iter_text(task_run_id: int) -> Iterator[str]:
    """The whole log as text, one chunk at a time (for the raw download)."""
    chunks = LogChunk.objects.filter(task_run_id=task_run_id).order_by("first")
    for chunk in chunks.iterator(chunk_size=8):
        yield "".join(entry[3] + "\n" for entry in chunk.lines)


def stored_last(task_run_id: int) -> int:
    last = LogChunk.objects.filter(task_run_id=task_run_id).order_by("-first").values_list("last", flat=True).first()
    return last or 0
