"""The local runtime's state directory: JSON files, stable ports, process identity from /proc."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

# Layout under the root:
#   supervisor.lock               held (flock) by the process that supervises this root
#   ports.json                    stable ports: "<namespace>/<owner>/<index>" -> port
#   runtimes/<namespace>/state.json, events.jsonl, logs/, run/, addons/<name>/
#   jobs/<namespace or _>/<name>/job.json, job.log, run/


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def place_file(path: str, text: str, mode: int = 0o600) -> None:
    """Put a file the way a volume is mounted before a container starts: written whole (a
    temporary file linked into place, so no reader sees half of it), and only when absent: a job
    started again reads what its first start placed there."""
    tmp = _written_beside(path, text, mode)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def write_json(path: Path, data: Any, mode: int = 0o644) -> None:
    """Atomic replace, so a reader (or a console killed mid-write) never sees half a file."""
    # One line: json.dump, or any indent, takes the pure-Python encoder (5x slower); the starter
    # threads write one of these for every job they start.
    write_text(path, json.dumps(data, sort_keys=True), mode)


def write_text(path: Path | str, text: str, mode: int = 0o644) -> None:
    """Atomic replace through a temporary file of this process and thread only: writers racing
    for the same file (jobs starting together) each replace it whole, none loses its temporary."""
    os.replace(_written_beside(os.fspath(path), text, mode), path)


def _written_beside(path: str, text: str, mode: int) -> str:
    """A temporary file in `path`'s folder (made if missing) holding `text`; its path."""
    folder, name = os.path.split(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return tmp


def default_root() -> Path:
    return Path(os.environ.get("DICE_LOCAL_ROOT") or Path.cwd() / "var" / "local")


# ---- processes ------------------------------------------------------------------------------


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (clock ticks since boot), or None if gone or a zombie.

    Together with the pid it identifies a process: a recycled pid has another start time."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = raw[raw.rfind(")") + 2 :].split()
    if not fields or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def alive(pid: int | None, start_time: int | None) -> bool:
    if not pid:
        return False
    current = proc_start_time(pid)
    return current is not None and (start_time is None or current == start_time)


def signal_group(pid: int, sig: int) -> None:
    """Signal the process group led by pid (each shim leads its own session and group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def signal_pid(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def child_pid(pidfile: str | None) -> int | None:
    """The process group of the command the shim wrote, if it did (its pid where the shim wrote
    no group: a sandboxed command is in its sandbox init's group, not one of its own)."""
    if not pidfile:
        return None
    data = read_json(Path(pidfile)) or {}
    return data.get("group") or data.get("pid")


def kill_all(pid: int, pidfile: str | None) -> None:
    """SIGKILL a shim's group and its command's group, and the shim itself: a compiled shim
    started ahead makes its session first thing, so one that has not run yet leads no group.
    (Callers have checked that pid is still the shim: alive() with its start time.)"""
    child = child_pid(pidfile)
    if child:
        signal_group(child, signal.SIGKILL)
    signal_group(pid, signal.SIGKILL)
    signal_pid(pid, signal.SIGKILL)


def terminate(procs: list[tuple[int, int | None, str | None]], sig: int = signal.SIGTERM, grace: float = 5.0) -> None:
    """Stop shims (pid, start_time, pidfile) and wait: sig to each (the shim passes it on to its
    command's group), then SIGKILL to both groups of those still alive after grace. Returns when
    the commands are gone too, not only their shims: a shim may exit while its sandboxed command
    is still being torn down, and a stopped runtime must hold no process."""
    live = [p for p in procs if alive(p[0], p[1])]
    # the commands, read before the shims exit and remove their pid files
    commands = [(c, t) for c in (child_pid(p[2]) for p in live) if c and (t := proc_start_time(c)) is not None]
    for pid, _, _ in live:
        signal_pid(pid, sig)
    deadline = time.monotonic() + grace
    while live and time.monotonic() < deadline:
        _reap()
        live = [p for p in live if alive(p[0], p[1])]
        if live:
            time.sleep(0.02)
    for pid, _, pidfile in live:
        kill_all(pid, pidfile)
    deadline = time.monotonic() + 2
    while live and time.monotonic() < deadline:
        _reap()
        live = [p for p in live if alive(p[0], p[1])]
        if live:
            time.sleep(0.02)
    commands = [c for c in commands if alive(*c)]
    for pid, _ in commands:  # the shim is gone: nothing will pass a signal on any more
        signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while commands and time.monotonic() < deadline:
        commands = [c for c in commands if alive(*c)]
        if commands:
            time.sleep(0.02)


# The shims this process started: polled so they do not linger as zombies. Only our own Popen
# objects are reaped (never waitpid(-1), which would steal other code's children).
CHILDREN: dict[int, subprocess.Popen] = {}


def _reap() -> None:
    for pid, popen in list(CHILDREN.items()):
        if popen.poll() is not None:
            CHILDREN.pop(pid, None)


# ---- ports ----------------------------------------------------------------------------------


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def ephemeral_port(avoid: set[int]) -> int:
    """A port free right now on 127.0.0.1 (the kernel's choice), not one of `avoid`."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in avoid:
            return port
    raise OSError("no free port on 127.0.0.1")


class PortBook:
    """Ports that must stay the same across restarts and redeploys (front ports, addon ports)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, int]:
        return read_json(self.path, {}) or {}

    def reserved(self) -> set[int]:
        return set(self._load().values())

    def get(self, key: str) -> int:
        """The port kept for key; allocated (and saved) the first time it is asked for."""
        book = self._load()
        if key in book:
            return book[key]
        port = ephemeral_port(set(book.values()))
        book[key] = port
        write_json(self.path, book)
        return port

    def release(self, prefix: str) -> list[int]:
        book = self._load()
        gone = [k for k in book if k.startswith(prefix)]
        ports = [book.pop(k) for k in gone]
        if gone:
            write_json(self.path, book)
        return ports


class RootLock:
    """An flock on <root>/supervisor.lock: one process supervises a root at a time."""

    def __init__(self, root: Path) -> None:
        self.path = root / "supervisor.lock"
        self.fd: int | None = None

    def acquire(self) -> bool:
        if self.fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return True

    def holder(self) -> str:
        with contextlib.suppress(OSError):
            return self.path.read_text().strip()
        return "?"

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
