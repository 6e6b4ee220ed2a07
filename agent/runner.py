"""The agent's work: restore, run, stream, collect, store, report (see agent/__init__.py)."""

from __future__ import annotations

# Only modules built into the interpreter or frozen in it at the top: every step starts an
# agent, and the usual ones (json -> re -> enum, subprocess -> signal -> enum, threading ->
# functools -> collections, contextlib, pathlib, socket) cost it 20-40 ms on this machine
# before it ran anything (bench/bench_pipeline_dispatch.py). What a step needs only sometimes
# (caches: tarfile, pathlib; masks: re; a checkout: urllib) is imported where it is used.
import _signal
import _thread
import os
import select
import sys
import time

from agent.checkout import step_script
from agent.jsonlite import dumps
from agent.masking import Masker

META_PREFIX = "action meta:"
TIMEOUT_EXIT = 124


class LogOut:
    """Numbered, timestamped, masked JSON lines on stdout, safe from several threads (the
    Kubernetes sidecar's)."""

    def __init__(self, mask: list[str], out=None) -> None:
        self.masker = Masker(mask)  # the values, their encoded forms, a value split over two lines
        self.out = out or sys.stdout
        self.number = 0
        self.lock = _thread.allocate_lock()
        self.meta: dict[str, str] = {}

    def masked(self, text: str) -> str:
        return self.masker(text)

    def line(self, text: str, stream: str = "stdout") -> None:
        text = text.rstrip("\r\n")
        if stream == "stdout" and text.startswith(META_PREFIX):
            key, sep, value = text[len(META_PREFIX):].strip().partition("=")
            if sep and key.strip():
                self.meta[key.strip()] = value.strip()
        with self.lock:
            self.number += 1
            record = {"n": self.number, "ts": round(time.time(), 6), "stream": stream,
                      "text": self.masker.line(text, stream)}
            self.out.write(dumps(record, ensure_ascii=False) + "\n")
            self.out.flush()

    def system(self, text: str) -> None:
        self.line(text, "system")


def read_metafile(path: str | None) -> dict[str, str]:
    """`key=value` lines (blank lines and lines without `=` ignored)."""
    out: dict[str, str] = {}
    if not path:
        return out
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return out
    for raw in text.splitlines():
        key, sep, value = raw.partition("=")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


def write_json_atomic(path: str, data: dict) -> None:
    folder, name = os.path.split(path)
    os.makedirs(folder or ".", exist_ok=True)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        fh.write(dumps(data))
    os.replace(tmp, path)


# ---- the spec ------------------------------------------------------------------------------


def _kind(value) -> str:
    """A JSON value's kind, as an error names it (the Go runner's words: agent/gorunner/spec.go)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "text"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    return "a list" if isinstance(value, list) else "an object"


def _text_list(spec: dict, key: str) -> str:
    value = spec.get(key)
    if value is None:
        return ""
    if not isinstance(value, list):
        return f"`{key}` must be a list of text, not {_kind(value)}"
    for i, item in enumerate(value, 1):
        if not isinstance(item, str):
            return f"`{key}` item {i} must be text, not {_kind(item)}"
    return ""


def _required_text(spec: dict, key: str) -> str:
    if key not in spec:
        return f"`{key}` is missing"
    if not isinstance(spec[key], str):
        return f"`{key}` must be text, not {_kind(spec[key])}"
    return "" if spec[key] else f"`{key}` is empty"


def check_spec(spec) -> str:
    """What is wrong with a step spec, or "": the fields the agent reads, with their types. The
    Go runner (agent/gorunner/spec.go) checks the same, in the same order and words."""
    if not isinstance(spec, dict):
        return f"the spec must be a JSON object, not {_kind(spec)}"
    for key in ("workdir", "metafile", "result"):
        problem = _required_text(spec, key)
        if problem:
            return problem
    for key in ("commands", "mask"):
        problem = _text_list(spec, key)
        if problem:
            return problem
    for key in ("dirs", "envs", "params"):
        value = spec.get(key)
        if value is not None and not isinstance(value, dict):
            return f"`{key}` must be an object, not {_kind(value)}"
        for name, item in (value or {}).items() if key != "params" else ():
            if key == "dirs" and not isinstance(item, str):
                return f"`dirs` entry {name!r} must be text, not {_kind(item)}"
            if key == "envs" and not isinstance(item, (str, int, float)):
                return f"`envs` entry {name!r} must be text, a number or a boolean, not {_kind(item)}"
    for key in ("shell", "notify", "type", "alias", "job"):
        value = spec.get(key)
        if (value is not None or key == "alias") and key in spec and not isinstance(value, str):
            return f"`{key}` must be text, not {_kind(value)}"  # alias: an environment variable's value
    task_run = spec.get("task_run")
    if task_run is not None and (isinstance(task_run, bool) or not isinstance(task_run, (str, int, float))):
        return f"`task_run` must be a number or text, not {_kind(task_run)}"
    timeout = spec.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))):
        return f"`timeout` must be a number of seconds or null, not {_kind(timeout)}"
    if isinstance(timeout, float) and not -1e18 < timeout < 1e18:  # NaN, Infinity, beyond any clock
        return f"`timeout` must be a finite number of seconds, not {timeout!r}"
    caches = spec.get("caches")
    if caches is not None:
        if not isinstance(caches, list):
            return f"`caches` must be a list, not {_kind(caches)}"
        for i, cache in enumerate(caches, 1):
            if not isinstance(cache, dict):
                return f"`caches` item {i} must be an object, not {_kind(cache)}"
            for key in ("key", "path", "archive"):
                problem = _required_text(cache, key)
                if problem:
                    return f"`caches` item {i}: {problem}"
    if "mask_forms" in spec:
        problem = _text_list(spec, "mask_forms")
        if problem:
            return problem
    if spec.get("script") is not None and not isinstance(spec["script"], str):
        return f"`script` must be text or null, not {_kind(spec['script'])}"
    return ""


def bad_spec(spec_path: str, result: str, problem: str) -> int:
    """The spec cannot be run: said on stderr and in a result file (the spec's `result` when it
    names one, else result.json beside the spec), so that the console reads why. Exit status 1."""
    text = f"bad step spec {spec_path}: {problem}"
    print(f"agent: {text}", file=sys.stderr, flush=True)
    now = time.time()
    try:
        write_json_atomic(result or os.path.join(os.path.dirname(spec_path), "result.json"),
                          {"exit_code": 1, "outputs": {}, "started": now, "finished": now, "timed_out": False,
                           "caches": [], "error": text, "lines": 0})
    except OSError as exc:
        print(f"agent: cannot write the result: {exc}", file=sys.stderr)
    return 1


# ---- context and caches -------------------------------------------------------------------


def restore(spec: dict, log: LogOut) -> None:
    os.makedirs(spec["workdir"], exist_ok=True)
    for alias, path in sorted((spec.get("dirs") or {}).items()):
        if not os.path.isdir(path):
            os.makedirs(path, exist_ok=True)
            log.system(f"context: directory of '{alias}' was empty")
    for cache in spec.get("caches") or []:
        from pathlib import Path  # here, not at the top: most steps have no cache (see below)

        archive = Path(cache["archive"])
        target = Path(cache["path"])
        if not archive.is_file():
            log.system(f"cache {cache['key']}: nothing stored yet")
            continue
        target.mkdir(parents=True, exist_ok=True)
        import tarfile  # imported when needed: most steps have no cache, and every step starts an agent

        from agent import safetar

        with tarfile.open(archive, "r:gz") as tar:
            safetar.extract_all(tar, target)
        log.system(f"cache {cache['key']}: restored into {target}")


def store_caches(spec: dict, log: LogOut) -> list[dict]:
    stored = []
    for cache in spec.get("caches") or []:
        from pathlib import Path

        source = Path(cache["path"])
        if not source.is_dir():
            log.system(f"cache {cache['key']}: {source} does not exist, not stored")
            continue
        archive = Path(cache["archive"])
        archive.parent.mkdir(parents=True, exist_ok=True)
        tmp = archive.with_name(f".{archive.name}.{os.getpid()}.tmp")
        import tarfile

        with tarfile.open(tmp, "w:gz") as tar:
            tar.add(source, arcname=".")
        os.replace(tmp, archive)
        size = archive.stat().st_size
        stored.append({"key": cache["key"], "archive": str(archive), "size": size})
        log.system(f"cache {cache['key']}: stored {size} bytes")
    return stored


# ---- running ------------------------------------------------------------------------------


READ_SIZE = 65536  # a longer line is streamed in pieces of this size, as readline(65536) did
EXIT_GRACE = 5.0  # seconds the streams may stay open after the step's process ended (a daemon it left)


class _Lines:
    """Bytes of one stream cut into lines for the log."""

    def __init__(self, log: LogOut, name: str) -> None:
        self.log, self.name, self.buf = log, name, b""

    def feed(self, data: bytes) -> None:
        self.buf += data
        while True:
            cut = self.buf.find(b"\n")
            if cut < 0:
                if len(self.buf) >= READ_SIZE:
                    piece, self.buf = self.buf[:READ_SIZE], self.buf[READ_SIZE:]
                    self.log.line(piece.decode("utf-8", errors="replace"), self.name)
                    continue
                return
            if cut + 1 > READ_SIZE:
                piece, self.buf = self.buf[:READ_SIZE], self.buf[READ_SIZE:]
            else:
                piece, self.buf = self.buf[:cut + 1], self.buf[cut + 1:]
            self.log.line(piece.decode("utf-8", errors="replace"), self.name)

    def close(self) -> None:
        if self.buf:
            self.log.line(self.buf.decode("utf-8", errors="replace"), self.name)
            self.buf = b""


def _spawn(argv: list[str], cwd: str, env: dict[str, str], own_group: bool) -> tuple[int, int, int]:
    """Start argv with /dev/null as stdin and pipes for stdout and stderr: (pid, out, err)."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    null = os.open(os.devnull, os.O_RDONLY)
    here = os.getcwd()
    try:
        os.chdir(cwd)  # posix_spawn has no working directory of its own; the agent's is put back
        actions = [(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
                   (os.POSIX_SPAWN_DUP2, err_w, 2)]
        kwargs = {"setpgroup": 0} if own_group else {}
        # Every signal is at its default in the step, as a container's process starts: not only
        # those this interpreter ignores (SIGPIPE, SIGXFSZ) but those ignored where the agent was
        # started (a console started in the background has SIGINT and SIGQUIT ignored, and an
        # ignored signal stays ignored through exec).
        defaults = _signal.valid_signals() - {_signal.SIGKILL, _signal.SIGSTOP}
        pid = os.posix_spawnp(argv[0], argv, env, file_actions=actions, setsigdef=defaults, **kwargs)
    finally:
        os.chdir(here)
        for fd in (null, out_w, err_w):
            os.close(fd)
    return pid, out_r, err_r


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def run_process(argv: list[str], *, cwd: str, env: dict[str, str], log: LogOut, timeout: float | None) -> tuple[int, bool]:
    """Run argv with its output streamed; (exit code, timed out). When the agent leads its process
    group (as a job's command it does) the child shares it, so a stop signal to the job reaches
    every process of the step; otherwise (run by hand) the child gets a group of its own.
    One thread: the two pipes are read as they fill (select), the child reaped when both end."""
    leader = os.getpgid(0) == os.getpid()
    try:
        pid, out_r, err_r = _spawn(argv, cwd, env, own_group=not leader)
    except OSError as exc:
        log.system(f"cannot start {argv[0]}: {exc}")
        return 127, False
    streams = {out_r: _Lines(log, "stdout"), err_r: _Lines(log, "stderr")}
    deadline = time.monotonic() + timeout if timeout else None
    status: int | None = None
    timed_out = False
    ended_at = None
    while streams:
        now = time.monotonic()
        if status is None and deadline is not None and now >= deadline and not timed_out:
            timed_out = True
            log.system(f"timed out after {timeout:g}s: stopping the step")
            status = _stop(pid, leader)
            ended_at = time.monotonic()
        if ended_at is not None and time.monotonic() - ended_at > EXIT_GRACE:
            break  # a process the step left behind holds the streams open: stop reading
        wait = 0.2 if status is None or ended_at is not None else None  # look at the child now and then
        if deadline is not None and status is None:
            wait = max(0.0, min(wait or 0.2, deadline - now))
        ready, _, _ = select.select(list(streams), [], [], wait)
        for fd in ready:
            data = os.read(fd, READ_SIZE)
            if data:
                streams[fd].feed(data)
            else:
                streams.pop(fd).close()
                os.close(fd)
        if status is None:
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status, ended_at = raw, time.monotonic()
    for fd, lines in streams.items():
        lines.close()
        os.close(fd)
    if status is None:
        _, status = os.waitpid(pid, 0)
    return (TIMEOUT_EXIT if timed_out else _exit_code(status)), timed_out


def _stop(pid: int, leader: bool) -> int:
    """Stop the whole group (the shell and what it started) but not the agent itself: SIGTERM,
    SIGKILL to the step's process after 5 s. Its wait status."""
    previous = _signal.signal(_signal.SIGTERM, _signal.SIG_IGN)
    try:
        try:  # noqa: SIM105 - not contextlib: its imports cost every step's start
            os.killpg(os.getpgid(0) if leader else pid, _signal.SIGTERM)
        except OSError:
            pass
        end = time.monotonic() + 5
        while time.monotonic() < end:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            time.sleep(0.05)
        try:  # noqa: SIM105
            os.kill(pid, _signal.SIGKILL)
        except OSError:
            pass
        return os.waitpid(pid, 0)[1]
    finally:
        _signal.signal(_signal.SIGTERM, previous)


def step_env(spec: dict) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.update({k: str(v) for k, v in (spec.get("envs") or {}).items()})
    env["METAFILE"] = spec["metafile"]
    env["WORKDIR"] = spec["workdir"]
    env["PIPELINE_TASK_ALIAS"] = spec.get("alias", "")
    env["PIPELINE_TASK_RUN_ID"] = str(spec.get("task_run", ""))
    return env


def run_script(spec: dict, log: LogOut, env: dict[str, str]) -> tuple[int, bool]:
    """The step's script (its commands, or the built-in git-checkout: agent.checkout) under
    `shell`, in the working directory."""
    text = step_script(spec)
    if text is None:
        log.system("no commands to run")
        return 0, False
    script = os.path.join(os.path.dirname(spec["metafile"]), "script.sh")
    # 0600 from the start: it may hold a secret (a checkout's credentials), as spec.json does
    fd = os.open(script, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(script, 0o600)  # an existing file keeps its mode through O_CREAT
    shell = spec.get("shell") or "/bin/sh"
    return run_process([shell, script], cwd=spec["workdir"], env=env, log=log, timeout=spec.get("timeout"))


def notify(address: str | None, payload: dict) -> None:
    if not address:
        return
    try:
        if address.startswith("udp://"):
            host, _, port = address[len("udp://"):].rpartition(":")
            hint = {k: payload.get(k) for k in ("task_run", "job")}
            # _socket, not socket: the wrapper's imports (enum classes, selectors) cost every step
            # a few milliseconds, for one datagram
            import _socket

            sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
            try:
                sock.sendto(dumps(hint).encode(), (host, int(port)))
            finally:
                sock.close()
        elif address.startswith(("http://", "https://")):
            import urllib.request  # 15 ms of imports only the Kubernetes sidecar needs

            request = urllib.request.Request(address, data=dumps(payload).encode(),
                                             headers={"Content-Type": "application/json"}, method="POST")
            urllib.request.urlopen(request, timeout=10).close()
    except (OSError, ValueError):
        pass


def run(spec: dict, out=None) -> dict:
    log = LogOut(spec.get("mask") or [], out)
    started = time.time()
    error = ""
    stored: list[dict] = []
    try:
        restore(spec, log)
        os.makedirs(os.path.dirname(spec["metafile"]) or ".", exist_ok=True)
        os.close(os.open(spec["metafile"], os.O_WRONLY | os.O_CREAT, 0o666))  # touch
        env = step_env(spec)
        code, timed_out = run_script(spec, log, env)
        if code == 0:
            stored = store_caches(spec, log)
    except Exception as exc:  # the result must always be written
        code, timed_out, error = 1, False, f"agent error: {exc}"
        log.system(error)
    outputs = {**read_metafile(spec.get("metafile")), **log.meta}
    outputs = {k: log.masked(v) for k, v in outputs.items()}
    result = {"exit_code": code, "outputs": outputs, "started": started, "finished": time.time(),
              "timed_out": timed_out, "caches": stored, "error": error, "lines": log.number}
    log.system(f"exit code {code}" + (" (timed out)" if timed_out else ""))
    result["lines"] = log.number
    write_json_atomic(spec["result"], result)
    notify(spec.get("notify"), {"task_run": spec.get("task_run"), "job": spec.get("job"), "result": result})
    return result
