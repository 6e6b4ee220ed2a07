"""The local log follower (scheduler/local/logs.py): no line written while it starts, or while
the writer rotates, is lost. Each race is made deterministic by writing at a fixed point: from
`discover` (called once for the first read and again when following starts) or from the
consumer between two lines it takes."""

from __future__ import annotations

import time
from pathlib import Path

from scheduler.local import logs
from scheduler.local.shim import LogWriter


def _write(path: Path, first: int, last: int, tag: str = "line") -> None:
    with open(path, "a") as fh:
        for n in range(first, last + 1):
            fh.write(f"{n}\t{time.time():.6f}\tstdout\t{tag} {n}\n")


class Barrier:
    """discover() for a logs folder that runs `between` once, on its second call: after the
    first read, before following starts."""

    def __init__(self, folder: Path, between) -> None:
        self.folder, self.between, self.calls = folder, between, 0

    def __call__(self) -> dict[str, Path]:
        self.calls += 1
        if self.calls == 2:
            self.between()
        return {p.name[:-4]: p for p in sorted(self.folder.glob("web-*.log"))}


def _follow_until(gen, count: int) -> list:
    got = []
    for line in gen:
        got.append(line)
        if len(got) >= count:
            break
    gen.close()
    return got


def _for(seconds: float):
    """finished() of a stream that follows for `seconds`, so a lost line fails instead of hanging."""
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() > deadline


def test_lines_and_sources_written_between_first_read_and_follow_are_yielded(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "FOLLOW_POLL", 0.01)
    _write(tmp_path / "web-0.log", 1, 3)

    def between():
        _write(tmp_path / "web-0.log", 4, 5)  # appended to a known source
        _write(tmp_path / "web-1.log", 1, 2, tag="new")  # a source the first read did not see

    gen = logs.stream(Barrier(tmp_path, between), follow=True, tail=None, finished=_for(2))
    got = _follow_until(gen, 7)
    assert [(line.source, line.number) for line in got] == [
        ("web-0", 1), ("web-0", 2), ("web-0", 3), ("web-0", 4), ("web-0", 5), ("web-1", 1), ("web-1", 2)]


def test_lines_written_while_the_consumer_takes_the_backlog_are_yielded(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "FOLLOW_POLL", 0.01)
    _write(tmp_path / "web-0.log", 1, 2)
    gen = logs.stream(lambda: {p.name[:-4]: p for p in tmp_path.glob("web-*.log")}, follow=True, tail=None,
                      finished=_for(2))
    first = next(gen)
    _write(tmp_path / "web-0.log", 3, 3)  # the follower has read, the consumer is busy with line 1
    _write(tmp_path / "web-1.log", 1, 1)
    rest = _follow_until(gen, 3)
    assert [(line.source, line.number) for line in [first, *rest]] == [
        ("web-0", 1), ("web-0", 2), ("web-0", 3), ("web-1", 1)]


def test_tail_cut_lines_are_not_replayed_and_later_ones_are_not_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "FOLLOW_POLL", 0.01)
    _write(tmp_path / "web-0.log", 1, 10)  # older: the tail cuts all of this source
    _write(tmp_path / "web-1.log", 1, 10)

    def between():
        _write(tmp_path / "web-0.log", 11, 12)

    gen = logs.stream(Barrier(tmp_path, between), follow=True, tail=3, finished=_for(2))
    got = _follow_until(gen, 5)
    assert [(line.source, line.number) for line in got] == [
        ("web-1", 8), ("web-1", 9), ("web-1", 10), ("web-0", 11), ("web-0", 12)]


def test_rotation_during_a_read_loses_no_line(tmp_path, monkeypatch):
    """The writer rotates (live -> .1 -> .2) between the reader's look at the live file and its
    look at the rotated ones: every line is still read once, in order."""
    path = tmp_path / "web-0.log"
    writer = LogWriter(str(path), max_bytes=10**9, keep=3)
    for n in range(1, 6):
        writer.write("stdout", f"line {n}")
    writer._rotate()
    for n in range(6, 11):
        writer.write("stdout", f"line {n}")
    real_glob = Path.glob

    def glob_after_rotation(self, pattern):
        if self == tmp_path:
            writer._rotate()  # after the live file was opened, before the rotated ones are listed
            writer.write("stdout", "line 11")
        return real_glob(self, pattern)

    monkeypatch.setattr(Path, "glob", glob_after_rotation)
    lines = logs.read_source(path, "web-0")
    monkeypatch.setattr(Path, "glob", real_glob)
    writer.fh.close()
    assert [line.number for line in lines] == list(range(1, 11))
    assert [line.number for line in logs.read_source(path, "web-0", after=10)] == [11]
