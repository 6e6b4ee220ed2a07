"""The per-process shim: runs one command, writes its numbered log lines and its exit status.

The command runs in its own process group (pgid = its pid, written to `--pidfile`); stop signals
the shim receives go to that whole group, and when the command exits the rest of its group is
killed.

Run as a script (`python3 shim.py ...`, standard library only, so it starts fast and never imports
the console). It is the session leader the supervisor starts; it outlives the console, so a
restarted console can re-adopt the process and still learn its exit code from `--exitfile`.

    shim.py --log FILE --pidfile FILE --exitfile FILE [--max-bytes N] [--keep N]
            [--mem-mib N] [--user NAME] [--cwd DIR] -- ARGV...

Log line format (one per line, tab separated): `<number> <unix time> <stream> <text>`.
Rotation is size based: FILE -> FILE.1 -> ... -> FILE.<keep>; numbering continues across files.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import pwd
import resource
import signal
import subprocess
import sys
import threading
import time

PR_SET_PDEATHSIG = 1


def last_number(path: str) -> int:
    """The number of the last line written to the log (0 for a new log)."""
    for candidate in (path, path + ".1"):
        try:
            with open(candidate, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - 65536))
                lines = fh.read().splitlines()
        except OSError:
            continue
        for line in reversed(lines):
            head = line.split(b"\t", 1)[0]
            if head.isdigit():
                return int(head)
    return 0


class LogWriter:
    """Appends numbered, timestamped lines to a file and rotates it by size."""

    def __init__(self, path: str, max_bytes: int, keep: int) -> None:
        self.path, self.max_bytes, self.keep = path, max_bytes, keep
        self.number = last_number(path)
        self.lock = threading.Lock()
        self.fh = open(path, "ab")  # noqa: SIM115 - kept open for the process's life

    def write(self, stream: str, text: str) -> None:
        with self.lock:
            self.number += 1
            line = f"{self.number}\t{time.time():.6f}\t{stream}\t{text}\n".encode("utf-8", "replace")
            self.fh.write(line)
            self.fh.flush()
            if self.fh.tell() >= self.max_bytes:
                self._rotate()

    def _rotate(self) -> None:
        self.fh.close()
        for i in range(self.keep - 1, 0, -1):
            if os.path.exists(f"{self.path}.{i}"):
                os.replace(f"{self.path}.{i}", f"{self.path}.{i + 1}")
        if self.keep > 0:
            os.replace(self.path, f"{self.path}.1")
        else:
            os.unlink(self.path)
        self.fh = open(self.path, "ab")  # noqa: SIM115


def pump(pipe, stream: str, log: LogWriter) -> None:
    for raw in iter(lambda: pipe.readline(65536), b""):
        log.write(stream, raw.decode("utf-8", "replace").rstrip("\r\n"))
    pipe.close()


def child_setup(mem_mib: int, user: str) -> None:
    """Runs in the child between fork and exec: memory limit, user, die with the shim."""
    os.setpgid(0, 0)  # the command and what it forks form one group the shim can signal
    if mem_mib > 0:
        limit = mem_mib * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if user:
        entry = pwd.getpwnam(user)
        os.setgroups([])
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
    # After the user change: a credential change clears the parent-death signal.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the shim died before prctl took effect
        os._exit(137)


def write_json(path: str, data: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    parser.add_argument("--pidfile", required=True)
    parser.add_argument("--exitfile", required=True)
    parser.add_argument("--max-bytes", type=int, default=10 * 1024 * 1024)
    parser.add_argument("--keep", type=int, default=3)
    parser.add_argument("--mem-mib", type=int, default=0)
    parser.add_argument("--user", default="")
    parser.add_argument("--cwd", default=None)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    log = LogWriter(args.log, args.max_bytes, args.keep)
    try:
        child = subprocess.Popen(
            command,
            cwd=args.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=lambda: child_setup(args.mem_mib, args.user),
        )
    except OSError as exc:
        log.write("stderr", f"cannot start {command[0] if command else '(nothing)'}: {exc}")
        write_json(args.exitfile, {"code": 127, "signal": None, "time": time.time(), "error": str(exc)})
        return 127

    def forward(signum, _frame):
        # To the whole group: `sh -c "python3 app.py"` forks, and the shell would not pass it on.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, forward)
    write_json(args.pidfile, {"pid": child.pid})
    readers = [
        threading.Thread(target=pump, args=(child.stdout, "stdout", log), daemon=True),
        threading.Thread(target=pump, args=(child.stderr, "stderr", log), daemon=True),
    ]
    for reader in readers:
        reader.start()
    while True:
        try:
            rc = child.wait()
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for clarity
            continue
    # Like a container: when the main process ends, what it left behind in its group ends too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    for reader in readers:
        reader.join(timeout=2)  # a grandchild that left the group may keep the pipes open
    code, sig = (rc, None) if rc >= 0 else (None, -rc)
    write_json(args.exitfile, {"code": code, "signal": sig, "time": time.time()})
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
