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
    """Every line of one source (the rotated files oldest first, then the live one) numbered > after."""
    files = sorted(path.parent.glob(path.name + ".*"), key=_rotation_index, reverse=True)
    files = [f for f in files if _rotation_index(f) > 0] + [path]
    out: list[LogLine] = []
    for file in files:
        try:
            with open(file, encoding="utf-8", errors="replace") as fh:
                for raw in fh:
                    line = parse_line(source, raw)
                    if line is not None and line.number > after:
                        out.append(line)
        except OSError:
            continue
    return out


def _rotation_index(path: Path) -> int:
    suffix = path.name.rsplit(".", 1)[-1]
    return int(suffix) if suffix.isdigit() else 0


def merged(sources: dict[str, Path], tail: int | None = None) -> list[LogLine]:
    """Lines of several sources in time order; with tail, only the last `tail` of them."""
    streams = [read_source(path, name) for name, path in sorted(sources.items())]
    lines = list(heapq.merge(*streams, key=lambda line: (line.timestamp, line.source, line.number)))
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
    closes the generator or `finished()` says no more will come (a job that ended)."""
    seen: dict[str, int] = {}
    for line in merged(discover(), tail):
        seen[line.source] = max(seen.get(line.source, 0), line.number)
        yield line
    if not follow:
        return
    # Sources that existed but had lines cut by tail must not replay them.
    for name, path in discover().items():
        lines = read_source(path, name)
        if lines:
            seen.setdefault(name, lines[-1].number)
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
