"""Reading the shims' log files: merged, numbered lines per source, with tail and follow."""

from __future__ import annotations

import heapq
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from scheduler.base import LogLine

FOLLOW_POLL = 0.2  # seconds between looks at the files in follow mode
READ_TRIES = 5  # looks at a log's files by read_from while they were renamed under it


def parse_line(source: str, raw: str) -> LogLine | None:
    parts = raw.rstrip("\n").split("\t", 3)
    if len(parts) != 4 or not parts[0].isdigit():
        return None
    try:
        stamp = float(parts[1])
    except ValueError:
        return None
    return LogLine(source=source, number=int(parts[0]), timestamp=stamp, text=parts[3], stream=parts[2])


def read_source(path: Path, source: str, after: int = 0) -> list[LogLine]:
    """Every line of one source (the rotated files oldest first, then the live one) numbered > after.

    The result is contiguous even when the writer rotates meanwhile: the live file is opened
    first, so what it holds stays readable under whatever name it gets, and a line met twice (the
    live file renamed to `.1` between the two looks) is taken once, in number order."""
    handles = []
    try:
        try:
            live = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed below
        except OSError:
            live = None
        rotated = sorted((f for f in path.parent.glob(path.name + ".*") if _rotation_index(f) > 0),
                         key=_rotation_index, reverse=True)
        for file in rotated:
            try:
                handles.append(open(file, encoding="utf-8", errors="replace"))  # noqa: SIM115
            except OSError:
                continue
        if live is not None:
            handles.append(live)
        out: list[LogLine] = []
        last = after
        for fh in handles:
            for raw in fh:
                line = parse_line(source, raw)
                if line is not None and line.number > last:
                    out.append(line)
                    last = line.number
        return out
    finally:
        for fh in handles:
            fh.close()


def _rotation_index(path: Path) -> int:
    suffix = path.name.rsplit(".", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0


def merged(sources: dict[str, Path], tail: int | None = None) -> list[LogLine]:
    """Lines of several sources in time order; with tail, only the last `tail` of them."""
    return _merge(_read_all(sources), tail)


def _read_all(sources: dict[str, Path]) -> dict[str, list[LogLine]]:
    return {name: read_source(path, name) for name, path in sorted(sources.items())}


def _merge(per_source: dict[str, list[LogLine]], tail: int | None) -> list[LogLine]:
    lines = list(heapq.merge(*per_source.values(), key=lambda line: (line.timestamp, line.source, line.number)))
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    return lines


def stream(
    discover: Callable[[], dict[str, Path]],
    *,
    follow: bool,
    tail: int | None,
    finished: Callable[[], bool] = lambda: False,
) -> Iterator[LogLine]:
    """Yield the lines so far, then (follow) new lines as they are written, until the consumer
    closes the generator or `finished()` says no more will come (a job that ended).

    Following resumes after the last line of each source that the first read saw, whether the
    tail yielded it or cut it; a source that read did not see is new, and followed from its first
    line. Nothing written after that read (while the consumer takes the first lines, say) is
    skipped: no second read decides what counts as seen."""
    per_source = _read_all(discover())
    seen: dict[str, int] = {name: lines[-1].number for name, lines in per_source.items() if lines}
    yield from _merge(per_source, tail)
    if not follow:
        return
    sizes: dict[str, tuple[int, int]] = {}
    done_checks = 0
    while True:
        sources = discover()
        fresh: list[LogLine] = []
        for name, path in sources.items():
            try:
                st = os.stat(path)
                mark = (st.st_ino, st.st_size)
            except OSError:
                mark = (0, 0)
            if sizes.get(name) == mark:
                continue
            sizes[name] = mark
            new = read_source(path, name, after=seen.get(name, 0))
            if new:
                seen[name] = new[-1].number
                fresh.extend(new)
        fresh.sort(key=lambda line: (line.timestamp, line.source, line.number))
        yield from fresh
        if finished():
            # One more look after the end, so lines written just before it are not lost.
            done_checks += 1
            if done_checks > 1:
                return
        time.sleep(FOLLOW_POLL)


def read_from(path: Path, source: str, position: tuple | None, after: int = 0) -> tuple[list[LogLine], tuple | None]:
    """The lines of one source written since `position` (what an earlier call returned; None: from
    the oldest file kept) and numbered > after, with the position after them: a reader polling a
    long log reads only what it has not read, not the whole log each time.

    A position is (the file's inode, the byte offset after the last whole line read, that line's
    number). The writer rotates by renaming (FILE -> FILE.1 -> ...), so a file keeps its inode
    under its new name: the remembered file is found among the rotated ones by inode, read on
    from the offset, and the newer files after it whole. The live file is opened first (as
    read_source does), so a rotation meanwhile leaves nothing unread; a line met twice is taken
    once, by number. A line still being written (no newline yet) is left for the next call. When
    the remembered file is gone (rotated out of the kept ones) or the offset does not fall after a
    line (another file under a recycled inode), everything still kept is read, numbered > the
    position's line: nothing is repeated, and lines lost are only those the writer deleted.

    The shim numbers its lines without gaps, so a gap in what was read (or between the last line
    read before and the first read now) means the files were renamed while they were being listed
    and opened (one of them seen under no name): the read is done again (up to READ_TRIES times; a
    gap left then is lines the writer deleted)."""
    if position is not None:
        found = _read_live(path, source, position, after)
        if found is not None:
            return found
    for attempt in range(READ_TRIES):
        lines, new_position, trusted = _read_from_once(path, source, position, after)
        known = max(after, position[2] if position is not None else 0)
        expected = known + 1 if (trusted or known) else (lines[0].number if lines else 0)
        if all(line.number == expected + i for i, line in enumerate(lines)) or attempt == READ_TRIES - 1:
            return lines, new_position
    raise AssertionError("unreachable")


def _read_live(path: Path, source: str, position: tuple, after: int) -> tuple[list[LogLine], tuple] | None:
    """read_from's usual case, the position still in the live file: four system calls (open,
    fstat, one read from the byte before the offset, close). Each call lets other threads take
    the interpreter, and a monitor reading 50 logs in a busy console waited for it at every one
    of the dozen calls a read made. None when the live file is another one (a rotation)."""
    ino, offset, number = position
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_ino != ino or st.st_size < offset:
            return None
        start = max(0, offset - 1)
        data = os.pread(fd, st.st_size - start, start)
    except OSError:
        return None
    finally:
        os.close(fd)
    if offset > 0:
        if data[:1] != b"\n":
            return None
        data = data[1:]
    end = data.rfind(b"\n") + 1
    out: list[LogLine] = []
    last = max(after, number)
    for raw in data[:end].decode("utf-8", "replace").split("\n")[:-1]:
        line = parse_line(source, raw)
        if line is not None and line.number > last:
            out.append(line)
            last = line.number
    if out and out[0].number != max(after, number) + 1 or any(
            b.number != a.number + 1 for a, b in zip(out, out[1:], strict=False)):
        return None  # not the file the position was taken in: read_from looks at every file
    return out, (ino, offset + end, last)


def _read_from_once(path: Path, source: str, position: tuple | None,
                    after: int) -> tuple[list[LogLine], tuple | None, bool]:
    """One look at the files for read_from; also whether the position's file was found (then the
    first line read must follow the position's line)."""
    chain: list[tuple[Any, int]] = []  # (binary handle, inode), oldest first, one per inode
    try:
        try:
            live = open(path, "rb")  # noqa: SIM115 - closed below
            live_ino = os.fstat(live.fileno()).st_ino
        except OSError:
            live, live_ino = None, 0
        if live is not None and position is not None and position[0] == live_ino \
                and _line_starts_at(live, position[1]):
            # Still the live file (the usual case): no rotated file can hold a line after the position.
            rotated = []
        else:
            rotated = sorted((f for f in path.parent.glob(path.name + ".*") if _rotation_index(f) > 0),
                             key=_rotation_index, reverse=True)
        for file in rotated:
            try:
                fh = open(file, "rb")  # noqa: SIM115 - closed below
            except OSError:
                continue
            ino = os.fstat(fh.fileno()).st_ino
            if ino == live_ino or any(ino == seen for _, seen in chain):
                fh.close()
                continue
            chain.append((fh, ino))
        if live is not None:
            chain.append((live, live_ino))
        start, offset, trusted = 0, 0, False
        if position is not None:
            ino, remembered, number = position
            after = max(after, number)
            for i, (fh, fino) in enumerate(chain):
                if fino == ino and _line_starts_at(fh, remembered):
                    start, offset, trusted = i, remembered, True
                    break
        out: list[LogLine] = []
        last = after
        new_position = position
        for i in range(start, len(chain)):
            fh, fino = chain[i]
            begin = offset if i == start else 0
            fh.seek(begin)
            data = fh.read()
            end = data.rfind(b"\n") + 1  # whole lines only
            for raw in data[:end].decode("utf-8", "replace").split("\n")[:-1]:
                line = parse_line(source, raw)
                if line is not None and line.number > last:
                    out.append(line)
                    last = line.number
            new_position = (fino, begin + end, last)
        return out, new_position, trusted
    finally:
        for fh, _ in chain:
            fh.close()


def _line_starts_at(fh, offset: int) -> bool:
    """Whether a line of the file can start at offset: 0, or just after a newline within it."""
    if offset == 0:
        return True
    try:
        size = os.fstat(fh.fileno()).st_size
        if offset > size:
            return False
        fh.seek(offset - 1)
        return fh.read(1) == b"\n"
    except OSError:
        return False
