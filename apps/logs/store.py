"""Chunked storage of task-run logs: append numbered lines in bulk, read from any line on."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

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
    for task_run_id, first, entries in items:
        if not entries:
            continue
        entries = [list(e) for e in entries]
        position = 0
        tail = None if first == 1 else LogChunk.objects.filter(task_run_id=task_run_id).order_by("-first").first()
        if tail is not None and tail.last >= first:
            raise ValueError(f"task run {task_run_id}: line {first} is already stored (chunk {tail})")
        if tail is not None and not tail.full and tail.last + 1 == first:
            size, count = tail.size, tail.last - tail.first + 1
            while position < len(entries) and count < CHUNK_LINES and size < CHUNK_BYTES:
                size += _cost(entries[position])
                count += 1
                position += 1
            LogChunk.objects.filter(pk=tail.pk).update(
                lines=tail.lines + entries[:position], last=first + position - 1, size=size)
        while position < len(entries):
            start, size = position, 0
            while position < len(entries) and position - start < CHUNK_LINES and size < CHUNK_BYTES:
                size += _cost(entries[position])
                position += 1
            chunks.append(LogChunk(task_run_id=task_run_id, first=first + start, last=first + position - 1,
                                   size=size, lines=entries[start:position]))
    if chunks:
        LogChunk.objects.bulk_create(chunks)


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
