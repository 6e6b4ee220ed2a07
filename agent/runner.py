"""The agent's work: restore, run, stream, collect, store, report (see agent/__init__.py)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

META_PREFIX = "action meta:"
MASK = "******"
TIMEOUT_EXIT = 124


class LogOut:
    """Numbered, timestamped, masked JSON lines on stdout, safe from several threads."""

    def __init__(self, mask: list[str], out=None) -> None:
        self.mask = sorted({m for m in mask if m}, key=len, reverse=True)
        self.out = out or sys.stdout
        self.number = 0
        self.lock = threading.Lock()
        self.meta: dict[str, str] = {}

    def masked(self, text: str) -> str:
        for secret in self.mask:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def line(self, text: str, stream: str = "stdout") -> None:
        text = text.rstrip("\r\n")
        if stream == "stdout" and text.startswith(META_PREFIX):
            key, sep, value = text[len(META_PREFIX):].strip().partition("=")
            if sep and key.strip():
                self.meta[key.strip()] = value.strip()
        with self.lock:
            self.number += 1
            record = {"n": self.number, "ts": round(time.time(), 6), "stream": stream, "text": self.masked(text)}
            self.out.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.out.flush()

    def system(self, text: str) -> None:
        self.line(text, "system")


def read_metafile(path: str | None) -> dict[str, str]:
    """`key=value` lines (blank lines and lines without `=` ignored)."""
    out: dict[str, str] = {}
    if not path:
        return out
    with contextlib.suppress(OSError):
        for raw in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
            key, sep, value = raw.partition("=")
            if sep and key.strip():
                out[key.strip()] = value.strip()
    return out


def write_json_atomic(path: str, data: dict) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, target)


# ---- context and caches -------------------------------------------------------------------


def restore(spec: dict, log: LogOut) -> None:
    Path(spec["workdir"]).mkdir(parents=True, exist_ok=True)
    for alias, path in sorted((spec.get("dirs") or {}).items()):
        if not Path(path).is_dir():
            Path(path).mkdir(parents=True, exist_ok=True)
            log.system(f"context: directory of '{alias}' was empty")
    for cache in spec.get("caches") or []:
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


def _pump(stream, log: LogOut, name: str) -> None:
    for raw in iter(stream.readline, b""):
        log.line(raw.decode("utf-8", errors="replace"), name)
    stream.close()


def run_process(argv: list[str], *, cwd: str, env: dict[str, str], log: LogOut, timeout: float | None) -> tuple[int, bool]:
    """Run argv with its output streamed; (exit code, timed out). When the agent leads its process
    group (as a job's command it does) the child shares it, so a stop signal to the job reaches
    every process of the step; otherwise (run by hand) the child gets a group of its own."""
    leader = os.getpgid(0) == os.getpid()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, process_group=None if leader else 0)
    readers = [threading.Thread(target=_pump, args=(proc.stdout, log, "stdout"), daemon=True),
               threading.Thread(target=_pump, args=(proc.stderr, log, "stderr"), daemon=True)]
    for reader in readers:
        reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        log.system(f"timed out after {timeout:g}s: stopping the step")
        # Stop the whole group (the shell and what it started) but not the agent itself.
        previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            os.killpg(os.getpgid(0) if leader else proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        finally:
            signal.signal(signal.SIGTERM, previous)
    for reader in readers:
        reader.join(timeout=5)
    code = proc.returncode
    if code is not None and code < 0:
        code = 128 - code
    return (TIMEOUT_EXIT if timed_out else code), timed_out


def step_env(spec: dict) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.update({k: str(v) for k, v in (spec.get("envs") or {}).items()})
    env["METAFILE"] = spec["metafile"]
    env["WORKDIR"] = spec["workdir"]
    env["PIPELINE_TASK_ALIAS"] = spec.get("alias", "")
    env["PIPELINE_TASK_RUN_ID"] = str(spec.get("task_run", ""))
    return env


def run_commands(spec: dict, log: LogOut, env: dict[str, str]) -> tuple[int, bool]:
    commands = [c for c in spec.get("commands") or [] if c.strip()]
    if not commands:
        log.system("no commands to run")
        return 0, False
    script = Path(spec["metafile"]).with_name("script.sh")
    script.write_text("set -e\n" + "\n".join(commands) + "\n")
    shell = spec.get("shell") or "/bin/sh"
    return run_process([shell, str(script)], cwd=spec["workdir"], env=env, log=log, timeout=spec.get("timeout"))


def _with_credentials(url: str, username: str | None, password: str | None) -> str:
    if not username:
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return url
    from urllib.parse import quote

    netloc = f"{quote(username, safe='')}:{quote(password or '', safe='')}@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def git_checkout(spec: dict, log: LogOut, env: dict[str, str]) -> tuple[int, bool]:
    """Clone `url`/`uri` into the working directory at `branch` or `commit`; outputs commit,
    branch, author and message."""
    params = spec.get("params") or {}
    url = params.get("url") or params.get("uri")
    if not url:
        log.system("git-checkout needs the param `url` (or `uri`)")
        return 2, False
    url = _with_credentials(str(url), params.get("username"), params.get("password"))
    workdir = spec["workdir"]
    branch, commit, depth = params.get("branch"), params.get("commit"), params.get("depth")
    env = {**env, "GIT_TERMINAL_PROMPT": "0"}
    argv = ["git", "-c", "advice.detachedHead=false", "clone", "--quiet"]
    if depth and not commit:
        argv += ["--depth", str(int(depth))]
    if branch and not commit:
        argv += ["--branch", str(branch)]
    argv += ["--", url, "."]
    log.system(f"git clone {params.get('url') or params.get('uri')}" + (f" (branch {branch})" if branch else ""))
    code, timed_out = run_process(argv, cwd=workdir, env=env, log=log, timeout=spec.get("timeout"))
    if code != 0 or timed_out:
        return code, timed_out
    if commit:
        code, timed_out = run_process(["git", "-c", "advice.detachedHead=false", "checkout", "--quiet", str(commit)],
                                      cwd=workdir, env=env, log=log, timeout=spec.get("timeout"))
        if code != 0 or timed_out:
            return code, timed_out

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=workdir, env=env, capture_output=True, text=True).stdout.strip()

    head = git("log", "-1", "--format=%H%x00%an <%ae>%x00%s").split("\0")
    current = git("rev-parse", "--abbrev-ref", "HEAD")
    outputs = {
        "commit": head[0] if head else "",
        "author": head[1] if len(head) > 1 else "",
        "message": head[2] if len(head) > 2 else "",
        "branch": str(branch) if branch else ("" if current == "HEAD" else current),
    }
    with open(spec["metafile"], "a", encoding="utf-8") as fh:
        for key, value in outputs.items():
            fh.write(f"{key}={value}\n")
    log.system(f"checked out {outputs['commit'][:12]} {outputs['message']}")
    return 0, False


def notify(address: str | None, payload: dict) -> None:
    if not address:
        return
    with contextlib.suppress(OSError, ValueError):
        if address.startswith("udp://"):
            host, _, port = address[len("udp://"):].rpartition(":")
            hint = {k: payload.get(k) for k in ("task_run", "job")}
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(json.dumps(hint).encode(), (host, int(port)))
        elif address.startswith(("http://", "https://")):
            import urllib.request  # 15 ms of imports only the Kubernetes sidecar needs

            request = urllib.request.Request(address, data=json.dumps(payload).encode(),
                                             headers={"Content-Type": "application/json"}, method="POST")
            urllib.request.urlopen(request, timeout=10).close()


def run(spec: dict, out=None) -> dict:
    log = LogOut(spec.get("mask") or [], out)
    started = time.time()
    error = ""
    stored: list[dict] = []
    try:
        restore(spec, log)
        Path(spec["metafile"]).parent.mkdir(parents=True, exist_ok=True)
        Path(spec["metafile"]).touch()
        env = step_env(spec)
        if spec.get("type") == "git-checkout":
            code, timed_out = git_checkout(spec, log, env)
        else:
            code, timed_out = run_commands(spec, log, env)
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


def main(argv: list[str] | None = None) -> int:
    import argparse  # here, not at the top: every step starts an agent, and most imports cost

    parser = argparse.ArgumentParser(prog="python -m agent")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("run", "run one step from its spec file"),
        ("restore", "on Kubernetes, as an init container: restore the step's context"),
        ("sidecar", "on Kubernetes, as a native sidecar: follow, collect, store and report"),
    ):
        commands.add_parser(name, help=text).add_argument("--spec", required=True, help="the step spec (JSON)")
    args = parser.parse_args(argv)
    spec = json.loads(Path(args.spec).read_text())
    if args.command == "restore":
        from agent.pod import restore_context

        return restore_context(spec)
    if args.command == "sidecar":
        from agent.pod import sidecar

        sidecar(spec)
        return 0
    result = run(spec)
    return 0 if result["exit_code"] == 0 else 1
