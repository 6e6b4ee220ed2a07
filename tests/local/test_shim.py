"""The shim's own run loop: one fork, the two streams read in one thread with select, the end heard
through SIGCHLD. Run as a program, as without the process starter, for each implementation: the
Python one (scheduler/local/shim.py, a script) and the compiled one (`agent/bin/dice-shim`,
the same command line), which must behave alike (tests/local/test_shim_parity.py compares them)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scheduler.local.sandbox import SHIM
from scheduler.local.supervisor import SHIM_PROGRAM
from tests.local.conftest import wait_for

IMPLEMENTATIONS = ("python", "go")


@functools.cache
def go_shim_missing() -> str:
    """Why the compiled shim cannot be run here ("" when it can): not built (`make runner`
    builds it where Go is installed)."""
    if not os.access(SHIM_PROGRAM, os.X_OK):
        return f"{SHIM_PROGRAM} is not built (`make runner`)"
    return ""


def shim_argv(implementation: str) -> list[str]:
    """What starts a shim of `implementation`; its arguments follow."""
    if implementation == "go":
        return [SHIM_PROGRAM]
    return [sys.executable, "-S", SHIM]


def skip_without(implementation: str) -> None:
    if implementation == "go" and go_shim_missing():
        pytest.skip(f"the Go shim: {go_shim_missing()}")


@pytest.fixture(params=IMPLEMENTATIONS)
def shim(request) -> list[str]:
    """The argv prefix of a shim, once per implementation (the Go one skipped when not built)."""
    skip_without(request.param)
    return shim_argv(request.param)


STARTED: list[int] = []  # sessions of the shims a test started, ended after it whatever happened


def kill_sessions(sessions: list[int]) -> None:
    """SIGKILL every process of these sessions (a shim started with start_new_session leads its
    own: itself and its command's group), so that a failed test leaves nothing running."""
    wanted = set(sessions)
    sessions.clear()
    if not wanted:
        return
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 3 and int(fields[3]) in wanted:  # field 6: the session
            with contextlib.suppress(OSError):
                os.kill(int(entry), signal.SIGKILL)


@pytest.fixture(autouse=True)
def _end_what_was_started():
    yield
    kill_sessions(STARTED)


def start(argv: list[str], **kwargs) -> subprocess.Popen:
    """A shim in a session of its own, ended after the test if still running."""
    proc = subprocess.Popen(argv, stdin=kwargs.pop("stdin", subprocess.DEVNULL), start_new_session=True, **kwargs)
    STARTED.append(proc.pid)
    return proc


def _shim(shim: list[str], tmp_path: Path, *command: str, extra: tuple[str, ...] = (), wait: bool = True):
    files = {name: str(tmp_path / name) for name in ("log", "pid", "exit")}
    argv = [*shim, "--log", files["log"], "--pidfile", files["pid"], "--exitfile", files["exit"],
            "--cwd", str(tmp_path), *extra, "--", *command]
    proc = start(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if wait:
        proc.communicate(timeout=10)
    return proc, files


def _lines(path: str) -> list[tuple[int, str, str]]:
    out = []
    for raw in Path(path).read_text().splitlines():
        number, _stamp, stream, text = raw.split("\t", 3)
        out.append((int(number), stream, text))
    return out


def test_both_streams_are_logged_numbered_with_long_lines_cut_and_the_last_line_without_newline(shim, tmp_path):
    script = ("import sys; sys.stdout.write('a\\n' + 'x' * 70000 + '\\n'); sys.stdout.flush(); "
              "sys.stderr.write('err\\n'); sys.stderr.flush(); sys.stdout.write('tail')")
    proc, files = _shim(shim, tmp_path, sys.executable, "-c", script)
    assert proc.returncode == 0
    lines = _lines(files["log"])
    assert [n for n, _, _ in lines] == list(range(1, len(lines) + 1))
    stdout = [text for _, stream, text in lines if stream == "stdout"]
    assert stdout == ["a", "x" * 65536, "x" * (70000 - 65536), "tail"]
    assert ("stderr", "err") in {(stream, text) for _, stream, text in lines}
    assert json.loads(Path(files["exit"]).read_text())["code"] == 0
    assert json.loads(Path(files["pid"]).read_text())["pid"] > 0


def test_the_exit_code_and_a_killing_signal_are_recorded(shim, tmp_path):
    proc, files = _shim(shim, tmp_path, "/bin/sh", "-c", "exit 3")
    assert proc.returncode == 3 and json.loads(Path(files["exit"]).read_text())["code"] == 3
    proc, files = _shim(shim, tmp_path, "/bin/sh", "-c", "kill -9 $$")
    info = json.loads(Path(files["exit"]).read_text())
    assert info["code"] is None and info["signal"] == signal.SIGKILL


def test_a_command_that_cannot_start_is_logged_with_the_reason(shim, tmp_path):
    proc, files = _shim(shim, tmp_path, "/nonexistent/program")
    assert proc.returncode == 127
    info = json.loads(Path(files["exit"]).read_text())
    assert info["code"] == 127 and "No such file" in info["error"]
    assert any("cannot start /nonexistent/program" in text for _, _, text in _lines(files["log"]))
    proc, files = _shim(shim, tmp_path, "true", extra=("--cwd", str(tmp_path / "missing")))
    assert proc.returncode == 127 and "missing" in json.loads(Path(files["exit"]).read_text())["error"]


def test_the_shim_holds_no_descriptor_of_its_own_in_the_command(shim, tmp_path):
    proc, files = _shim(shim, tmp_path, "/bin/sh", "-c", "ls /proc/self/fd")
    assert proc.returncode == 0
    fds = sorted(int(text) for _, stream, text in _lines(files["log"]) if stream == "stdout" and text.isdigit())
    assert fds[:3] == [0, 1, 2] and len(fds) <= 4  # ls's own directory descriptor at most


def test_a_stop_signal_reaches_the_whole_group_and_what_is_left_is_killed(shim, tmp_path):
    proc, files = _shim(shim, tmp_path, "/bin/sh", "-c", "sleep 300 & echo started; wait", wait=False)
    wait_for(lambda: Path(files["pid"]).exists() and any(t == "started" for _, _, t in _lines(files["log"])),
             what="the command to start")
    group = json.loads(Path(files["pid"]).read_text())["pid"]
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) != 0 and time.monotonic() - started < 10
    wait_for(lambda: not _group_alive(group), what="the command's group to end")
    assert json.loads(Path(files["exit"]).read_text())["signal"] == signal.SIGTERM


def test_the_end_is_recorded_promptly_when_a_process_left_behind_holds_the_streams(shim, tmp_path):
    """A daemon in a session of its own keeps stdout open: the command's end is still heard at
    once (SIGCHLD), the rest is read for 2 s at most, then the exit is written."""
    daemon = "setsid sleep 60 & echo daemon $!; echo bye"
    started = time.monotonic()
    proc, files = _shim(shim, tmp_path, "/bin/sh", "-c", daemon)
    assert proc.returncode == 0 and time.monotonic() - started < 8
    assert json.loads(Path(files["exit"]).read_text())["code"] == 0
    texts = [t for _, _, t in _lines(files["log"])]
    left = int(next(t for t in texts if t.startswith("daemon ")).split()[1])
    try:
        assert "bye" in texts
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(left, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


GLIBC_INTERNAL = (1 << 31) | (1 << 32)  # SIGCANCEL (32) and SIGSETXID (33) in a SigIgn mask


def test_the_command_starts_with_every_signal_at_its_default_whatever_the_console_ignores(shim, tmp_path):
    """A console started in the background has SIGINT and SIGQUIT ignored; an ignored signal stays
    ignored through exec, and the shim reset only SIGPIPE and SIGXFSZ: every step and service ran
    with them ignored (a service that stops on SIGINT did not). Now none is ignored in the command."""
    files = {name: str(tmp_path / name) for name in ("log", "pid", "exit")}
    argv = [*shim, "--log", files["log"], "--pidfile", files["pid"], "--exitfile", files["exit"],
            "--cwd", str(tmp_path), "--", "/bin/sh", "-c", "grep '^SigIgn' /proc/self/status"]

    def ignoring():
        for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)

    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10, preexec_fn=ignoring)
    assert proc.returncode == 0, proc.stderr
    texts = [text for _, stream, text in _lines(files["log"]) if stream == "stdout"]
    assert len(texts) == 1 and texts[0].startswith("SigIgn:"), texts
    # glibc's two internal signals (32, 33) are left ignored by its posix_spawn (make's, which
    # starts the tests in CI) and are no signals to Python: programs linked with glibc set them.
    assert int(texts[0].split()[1], 16) & ~GLIBC_INTERNAL == 0, texts
