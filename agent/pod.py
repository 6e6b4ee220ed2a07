"""The agent beside a step on Kubernetes: `restore` (init container) and `sidecar` (native sidecar).

The step container runs /dice/spec/run.sh: the commands with stdout and stderr captured to the
files named in spec["output"], then the exit code into output["exit"]; it waits for
output["stored"] before it ends, and hands result.json to Kubernetes as its termination message.
The sidecar follows those files as they grow and prints them as the agent's numbered JSON lines
(so the pod log of container `agent` is the step's log), and once the exit file appears it
collects outputs, stores caches on success, writes the result and marks it stored.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

from agent.runner import LogOut, notify, read_metafile, restore, store_caches, write_json_atomic

POLL = 0.2  # seconds between looks at the step's files


class _Follower:
    """Reads whole lines appended to one file since the last call."""

    def __init__(self, path: str, stream: str, log: LogOut) -> None:
        self.path, self.stream, self.log = Path(path), stream, log
        self.offset = 0
        self.partial = b""

    def poll(self, final: bool = False) -> None:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return
        self.offset += len(data)
        data = self.partial + data
        *lines, self.partial = data.split(b"\n")
        for raw in lines:
            self.log.line(raw.decode("utf-8", errors="replace"), self.stream)
        if final and self.partial:
            self.log.line(self.partial.decode("utf-8", errors="replace"), self.stream)
            self.partial = b""


def restore_context(spec: dict, out=None) -> int:
    """Init container: make the working directory, check earlier steps' dirs, extract caches."""
    log = LogOut(spec.get("mask") or [], out)
    restore(spec, log)
    return 0


def sidecar(spec: dict, out=None, *, stop: threading.Event | None = None, linger: bool = True) -> dict:
    """Follow the step's output, then collect, store and report. With linger, stay up (doing
    nothing) until SIGTERM, as a native sidecar must not end before the step container."""
    log = LogOut(spec.get("mask") or [], out)
    files = spec["output"]
    followers = [_Follower(files["stdout"], "stdout", log), _Follower(files["stderr"], "stderr", log)]
    stop = stop or threading.Event()
    started = time.time()
    exit_file = Path(files["exit"])
    while not exit_file.exists() and not stop.is_set():
        for follower in followers:
            follower.poll()
        stop.wait(POLL)
    for follower in followers:
        follower.poll(final=True)
    error, stored = "", []
    try:
        code = int(exit_file.read_text().strip() or 1)
    except (OSError, ValueError):
        code, error = 1, "the step ended without an exit code"
    if code == 0:
        try:
            stored = store_caches(spec, log)
        except OSError as exc:
            error = f"storing caches failed: {exc}"
    outputs = {**read_metafile(spec.get("metafile")), **log.meta}
    result = {
        "exit_code": code, "outputs": {k: log.masked(v) for k, v in outputs.items()},
        "started": started, "finished": time.time(), "timed_out": False, "caches": stored,
        "error": error, "lines": log.number,
    }
    log.system(f"exit code {code}")
    result["lines"] = log.number
    write_json_atomic(spec["result"], result)
    Path(files["stored"]).touch()
    notify(spec.get("notify"), {"task_run": spec.get("task_run"), "job": spec.get("job"), "result": result})
    if linger:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        stop.wait()
    return result
