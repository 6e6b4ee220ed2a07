"""The per-process shim: runs one command, writes its numbered log lines and its exit status.

The command runs in its own process group (pgid = its pid, written to `--pidfile`); stop signals
the shim receives go to that whole group, and when the command exits the rest of its group is
killed.

Run as a script (`python3 shim.py ...`, standard library only, so it starts fast and never imports
the console). It is the session leader the supervisor starts; it outlives the console, so a
restarted console can re-adopt the process and still learn its exit code from `--exitfile`.

    shim.py --log FILE --pidfile FILE --exitfile FILE [--max-bytes N] [--keep N]
            [--mem-mib N] [--user NAME] [--cwd DIR] [--sandbox FILE] -- ARGV...
    shim.py --foreground --sandbox FILE [--cwd DIR] -- ARGV...   (a probe or an addon's setup:
            standard streams passed through, the command's exit code returned)

With --sandbox (a JSON spec, see jail.py) the command runs inside bubblewrap as the tenant's uid,
in its own cgroup; the pidfile then names the command as the host sees it (its own session and
group), and the sandbox's init, which the shim kills when the command ends, so whatever the
command left behind ends with it.

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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jail  # beside this file; the shim runs as a script, without the package

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


def pump(pipe, stream: str, log: LogWriter, masker=None) -> None:
    for raw in iter(lambda: pipe.readline(65536), b""):
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        log.write(stream, masker.line(text, stream) if masker is not None else text)
    pipe.close()


def take_masker():
    """The masker of the secret values named in DICE_MASK (a JSON list the supervisor sets),
    removed from the environment first so the command never sees it. The same masking as a
    pipeline step's (agent/masking.py: the value and its common encodings, split lines)."""
    raw = os.environ.pop("DICE_MASK", "")
    if not raw:
        return None
    try:
        values = [str(v) for v in json.loads(raw) if v]
    except (ValueError, TypeError):
        return None
    if not values:
        return None
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from agent.masking import Masker

    return Masker(values)


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


class Sandboxed:
    """The shim's side of a sandbox: its cgroup, bubblewrap's info pipe, the command's pid."""

    def __init__(self, spec_path: str) -> None:
        with open(spec_path) as fh:
            self.spec = json.load(fh)
        self.cgroup: jail.Cgroup | None = None
        limits = self.spec.get("limits") or {}
        version = self.spec.get("cgroup") or ""
        if version and os.geteuid() == 0:
            cgroup = jail.Cgroup(version, f"dice-{os.getpid()}")
            try:
                cgroup.create(int(limits.get("mem_mib") or 0), float(limits.get("cpu") or 0),
                              int(limits.get("pids") or 0))
                self.cgroup = cgroup
            except OSError:  # no cgroup here after all: rlimits instead
                cgroup.remove()
        self.info_r, self.info_w = os.pipe()
        self.init_pid = 0

    def popen(self, command: list[str], cwd: str | None, **kwargs) -> subprocess.Popen:
        argv = jail.bwrap_argv(self.spec, command, cwd, self.info_w)
        env = jail.sandbox_env(self.spec, dict(os.environ))
        try:
            return subprocess.Popen(argv, cwd="/", env=env, pass_fds=(self.info_w,),
                                    preexec_fn=lambda: jail.child_setup(self.spec, self.cgroup), **kwargs)
        finally:
            os.close(self.info_w)

    def started(self) -> int | None:
        """Wait for bubblewrap to report its init; the command's host pid (None if it failed)."""
        raw, info = b"", None
        while info is None:
            chunk = os.read(self.info_r, 4096)
            if not chunk:
                break
            raw += chunk
            with contextlib.suppress(ValueError):
                info = json.loads(raw)
        os.close(self.info_r)
        try:
            self.init_pid = int(info["child-pid"])
        except (KeyError, TypeError, ValueError):
            return None
        return jail.command_pid(self.init_pid)

    def end(self) -> None:
        if self.init_pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.init_pid, signal.SIGKILL)  # the pid namespace and all in it
        if self.cgroup is not None:
            self.cgroup.remove()


def exit_status(rc: int, sandboxed: bool) -> tuple[int | None, int | None]:
    """(code, signal) of the command. bubblewrap reports a command killed by signal N as exit
    128+N, which is read back as that signal."""
    if rc < 0:
        return None, -rc
    if sandboxed and 128 < rc < 128 + 65:
        return None, rc - 128
    return rc, None


def foreground(args, command: list[str]) -> int:
    box = Sandboxed(args.sandbox)
    try:
        child = box.popen(command, args.cwd)  # standard streams are the caller's (an addon's setup SQL)
    except OSError as exc:
        print(f"cannot start {command[0] if command else '(nothing)'}: {exc}", file=sys.stderr)
        return 127
    box.started()
    rc = child.wait()
    box.end()
    code, sig = exit_status(rc, True)
    return code if code is not None else 128 + sig


def write_json(path: str, data: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log")
    parser.add_argument("--pidfile")
    parser.add_argument("--exitfile")
    parser.add_argument("--sandbox", default="")
    parser.add_argument("--foreground", action="store_true")
    parser.add_argument("--max-bytes", type=int, default=10 * 1024 * 1024)
    parser.add_argument("--keep", type=int, default=3)
    parser.add_argument("--mem-mib", type=int, default=0)
    parser.add_argument("--user", default="")
    parser.add_argument("--cwd", default=None)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.foreground:
        return foreground(args, command)
    if not (args.log and args.pidfile and args.exitfile):
        parser.error("--log, --pidfile and --exitfile are required")
    log = LogWriter(args.log, args.max_bytes, args.keep)
    masker = take_masker()
    box = None
    try:
        if args.sandbox:
            box = Sandboxed(args.sandbox)
            child = box.popen(command, args.cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
        else:
            child = subprocess.Popen(
                command,
                cwd=args.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                preexec_fn=lambda: child_setup(args.mem_mib, args.user),
            )
    except (OSError, ValueError) as exc:
        log.write("stderr", f"cannot start {command[0] if command else '(nothing)'}: {exc}")
        write_json(args.exitfile, {"code": 127, "signal": None, "time": time.time(), "error": str(exc)})
        if box is not None:
            box.end()
        return 127
    # The group to signal: the command's own (in a sandbox it leads its own session).
    group = child.pid
    if box is not None:
        group = box.started() or child.pid

    def forward(signum, _frame):
        # To the whole group: `sh -c "python3 app.py"` forks, and the shell would not pass it on.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, forward)
    record = {"pid": group, "shim": os.getpid()}  # the shim: what a console adopting a job mid-start follows
    if box is not None:
        record["init"] = box.init_pid
    write_json(args.pidfile, record)
    readers = [
        threading.Thread(target=pump, args=(child.stdout, "stdout", log, masker), daemon=True),
        threading.Thread(target=pump, args=(child.stderr, "stderr", log, masker), daemon=True),
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
    for pgid in {child.pid, group}:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    if box is not None:
        box.end()
    for reader in readers:
        reader.join(timeout=2)  # a grandchild that left the group may keep the pipes open
    code, sig = exit_status(rc, box is not None)
    write_json(args.exitfile, {"code": code, "signal": sig, "time": time.time()})
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
