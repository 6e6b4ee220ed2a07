"""The scale tier's janitor: whatever a test of the tier started goes when the test ends, even when
a worker was killed with SIGKILL part way, and even when pytest itself is.

The console fixture starts `python -m tests.scale.janitor DATA_DIR` with the console's environment,
in a session of its own, and keeps its standard input open. When that input ends (the fixture's
teardown closes it, or the kernel does when pytest dies), the janitor:
1. kills the console's processes (web, workers, beat: every process with DICE_DATA_DIR=DATA_DIR
   in its environment) and what they started that still runs from them;
2. destroys the local cluster's runtimes and jobs as the console would (LocalExecutor.destroy_all
   on DATA_DIR/local: it takes the cluster over, as a standby worker does, then stops every
   service, addon and step it finds recorded);
3. kills what is left of the tier (a process whose command line names DATA_DIR, e.g. a shim or a
   sandbox of it, or whose environment names it, and their descendants) and prints each one it
   had to kill, so the fixture can fail naming them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def _processes() -> dict[int, tuple[int, str, bytes, bytes]]:
    """pid -> (ppid, state, command line, environment) of every process but the zombies."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _read(f"/proc/{entry}/stat").decode(errors="replace")
        if not stat:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) < 2 or fields[0] in ("Z", "X"):
            continue
        found[int(entry)] = (int(fields[1]), fields[0], _read(f"/proc/{entry}/cmdline"), _read(f"/proc/{entry}/environ"))
    return found


def tier_processes(data: Path, spare: set[int] | None = None) -> dict[int, str]:
    """The live processes of the tier whose data directory is `data`: those that name it in their
    command line or environment, and their descendants (a service's sandbox, its command), except
    `spare` and the descendants of spared ones; pid -> command line."""
    procs = _processes()
    marker = str(data).encode()
    env_marker = b"DICE_DATA_DIR=" + marker
    spare = set(spare or ())
    roots = {pid for pid, (_, _, cmd, env) in procs.items()
             if pid not in spare and (marker + b"/" in cmd + b"\0" or marker + b"\0" in cmd + b"\0"
                                      or env_marker + b"\0" in env + b"\0")}
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_rest) in procs.items():
        children.setdefault(ppid, []).append(pid)
    members, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid in members or pid in spare:
            continue
        members.add(pid)
        todo.extend(children.get(pid, []))
    return {pid: procs[pid][2].replace(b"\0", b" ").decode(errors="replace").strip() for pid in sorted(members)}


def _kill(pids) -> None:
    for pid in pids:
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(OSError):
                kill(pid, signal.SIGKILL)


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        stat = _read(f"/proc/{pid}/stat").decode(errors="replace")
        if not stat:
            break
        pid = int(stat.rsplit(")", 1)[-1].split()[1])
    return pids


def console_processes(data: Path) -> list[int]:
    """The console's own processes (their environment names the data directory)."""
    env_marker = b"DICE_DATA_DIR=" + str(data).encode() + b"\0"
    mine = _ancestors()
    return [pid for pid, (_, _, _, env) in _processes().items() if pid not in mine and env_marker in env]


def cleanup(data: Path) -> dict[int, str]:
    """Steps 1-3 above; what step 3 had to kill (empty when the runtimes' destroy stopped all)."""
    mine = _ancestors()
    _kill(console_processes(data))
    local = data / "local"
    if local.exists():
        from scheduler.base import ClusterRef
        from scheduler.local import create_executor

        executor = create_executor(ClusterRef(name="local", kind="local", config={"root": str(local)}))
        try:
            executor.destroy_all()
        finally:
            executor.close()
    left = tier_processes(data, spare=mine)
    _kill(left)
    deadline = time.monotonic() + 10
    while tier_processes(data, spare=mine) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def main(argv: list[str]) -> int:
    data = Path(argv[0])  # as the console was given it: the markers are matched as text
    sys.stdin.read()  # until the fixture's teardown, or pytest's death, closes it
    left = cleanup(data)
    for pid, command in left.items():
        print(f"left running after the runtimes were destroyed: {pid} {command}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
