"""Reading the shims' log files: merged, numbered lines per source, with tail and follow."""

from __future__ import annotations

import heapq
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from scheduler.base import LogLine

FOLLOW_POLL = 0.2  # seconds between looks at the files in follow mode


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
