"""Reading a job's log on from a remembered position (scheduler.local.logs.read_from), across the
shim's rotations and a reader's restart, and the log watch that says which logs grew.

The writer is the shim's own LogWriter (what writes every step's and job's log)."""

from __future__ import annotations

import select
import threading
import time

import pytest

from scheduler.local import logs
from scheduler.local.logwatch import LogWatch
from scheduler.local.shim import LogWriter


def _read_all(path, position, after=0):
    lines, position = logs.read_from(path, "job", position, after)
    return [(line.number, line.text) for line in lines], position


def test_lines_are_read_once_across_rotations_and_a_half_written_line(tmp_path):
    path = tmp_path / "job.log"
    writer = LogWriter(str(path), max_bytes=600, keep=3)  # a rotation every ~15 lines
    got, position, written = [], None, 0
    for round_ in range(60):
        for _ in range(round_ % 7):  # 0 to 6 lines between reads: some reads find nothing new
            written += 1
            writer.write("stdout", f"line {written}")
        if round_ % 5 == 0:  # the next line half written: not read until it is whole
            with open(path, "ab") as fh:
                fh.write(f"{written + 1}\t{time.time():.6f}\tstdout\tline ".encode())
            new, position = _read_all(path, position)
            got += new
            with open(path, "ab") as fh:
                fh.write(f"{written + 1}\n".encode())
            written += 1
            writer.number = written
        new, position = _read_all(path, position)
        got += new
    assert len(list(tmp_path.glob("job.log.*"))) == 3  # it did rotate, and kept 3
    assert got == [(n, f"line {n}") for n in range(1, written + 1)]


def test_a_reader_without_its_position_resumes_after_its_last_stored_line(tmp_path):
    """A console restarted (or another worker taking over) has no position: it reads what is kept,
    numbered after the last line it stored, and goes on from there by position."""
    path = tmp_path / "job.log"
    writer = LogWriter(str(path), max_bytes=800, keep=10)
    for n in range(1, 101):
        writer.write("stdout", f"line {n}")
    first, position = _read_all(path, None)
    assert [n for n, _ in first] == list(range(1, 101))
    for n in range(101, 161):
        writer.write("stdout", f"line {n}")
    stored = 130  # the old reader stored up to here, then died with its position
    resumed, position = _read_all(path, None, after=stored)
    assert [n for n, _ in resumed] == list(range(131, 161))
    for n in range(161, 201):
        writer.write("stdout", f"line {n}")
    more, _ = _read_all(path, position)
    assert [n for n, _ in more] == list(range(161, 201))
    # A position that no longer points after a line (another file under a recycled inode) is
    # not trusted: what is kept is read, numbered after the position's line.
    ino, offset, number = position
    again, _ = _read_all(path, (ino, offset + 3, 180))
    assert [n for n, _ in again] == list(range(181, 201))


def test_reading_the_new_lines_of_a_long_log_costs_what_they_are(tmp_path, monkeypatch):
    """40,000 lines written, then 40 more: the read parses the 40, whatever the log's length (and
    across a rotation, only what came after the position)."""
    path = tmp_path / "job.log"
    writer = LogWriter(str(path), max_bytes=10 * 1024 * 1024, keep=3)
    for n in range(1, 40_001):
        writer.write("stdout", f"line {n} " + "x" * 60)
    _, position = _read_all(path, None)
    parsed = []
    real = logs.parse_line
    monkeypatch.setattr(logs, "parse_line", lambda source, raw: parsed.append(1) or real(source, raw))
    for n in range(40_001, 40_041):
        writer.write("stdout", f"line {n}")
    new, position = _read_all(path, position)
    assert [n for n, _ in new] == list(range(40_001, 40_041))
    assert len(parsed) == 40
    parsed.clear()
    writer.max_bytes = path.stat().st_size + 200  # the next lines rotate the 4 MB file away
    for n in range(40_041, 40_101):
        writer.write("stdout", f"line {n}")
    assert (tmp_path / "job.log.1").exists()
    new, position = _read_all(path, position)
    assert [n for n, _ in new] == list(range(40_041, 40_101))
    assert len(parsed) == 60


def test_a_reader_racing_a_rotating_writer_gets_every_line_once(tmp_path):
    path = tmp_path / "job.log"
    writer = LogWriter(str(path), max_bytes=2000, keep=1000)  # nothing rotated away: none may be missing
    total = 20_000
    done = threading.Event()

    def write():
        for n in range(1, total + 1):
            writer.write("stdout", f"line {n}")
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    got, position = [], None
    while True:
        finished = done.is_set()
        new, position = _read_all(path, position)
        got += [n for n, _ in new]
        if finished:
            break
    thread.join()
    assert len(list(tmp_path.glob("job.log.*"))) > 100
    assert got == list(range(1, total + 1))


def test_the_log_watch_reports_the_jobs_that_wrote_and_nothing_else(tmp_path):
    watch = LogWatch()
    try:
        folders = {}
        for name in ("a", "b", "quiet"):
            folders[name] = tmp_path / name
            folders[name].mkdir()
            assert watch.watch(name, folders[name], "job.log")
        assert not watch.watch("missing", tmp_path / "missing", "job.log")  # not there yet: later
        assert select.select([watch], [], [], 0)[0] == []
        writers = {name: LogWriter(str(folders[name] / "job.log"), max_bytes=300, keep=2) for name in ("a", "b")}
        assert watch.changed() == {"a", "b"}  # their logs were created
        (folders["quiet"] / "job.json").write_text("{}")  # another file of the folder: not a log
        writers["a"].write("stdout", "hello")
        assert select.select([watch], [], [], 5)[0] == [watch]
        assert watch.changed() == {"a"}
        assert watch.changed() == set()
        for n in range(20):  # rotations: the new job.log and the renames count as changes of b
            writers["b"].write("stdout", f"line {n}")
        assert watch.changed() == {"b"}
        watch.forget("b")
        writers["b"].write("stdout", "unheard")
        assert watch.changed() == set()
        assert sorted(watch.watched_keys()) == ["a", "quiet"]
    finally:
        watch.close()


@pytest.mark.parametrize("keep", [0])
def test_a_position_in_a_file_deleted_by_rotation_reads_what_is_kept(tmp_path, keep):
    """keep=0: the shim deletes the full file. The lines in it are gone; the reader goes on with
    the new file, nothing repeated."""
    path = tmp_path / "job.log"
    writer = LogWriter(str(path), max_bytes=300, keep=keep)
    writer.write("stdout", "line 1")
    got, position = _read_all(path, None)
    for n in range(2, 30):
        writer.write("stdout", f"line {n}")
    new, _ = _read_all(path, position)
    numbers = [n for n, _ in got + new]
    assert numbers == sorted(set(numbers)) and numbers[-1] == 29
