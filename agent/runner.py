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

from agent.checkout import step_script
from agent.masking import Masker

META_PREFIX = "action meta:"
TIMEOUT_EXIT = 124


class LogOut:
    """Numbered, timestamped, masked JSON lines on stdout, safe from several threads."""

    def __init__(self, mask: list[str], out=None) -> None:
        self.masker = Masker(mask)  # the values, their encoded forms, a value split over two lines
        self.out = out or sys.stdout
        self.number = 0
        self.lock = threading.Lock()
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


def run_script(spec: dict, log: LogOut, env: dict[str, str]) -> tuple[int, bool]:
    """The step's script (its commands, or the built-in git-checkout: agent.checkout) under
    `shell`, in the working directory."""
    text = step_script(spec)
    if text is None:
        log.system("no commands to run")
        return 0, False
    script = Path(spec["metafile"]).with_name("script.sh")
    script.write_text(text)
    script.chmod(0o600)  # it may hold a secret (a checkout's credentials), as spec.json does
    shell = spec.get("shell") or "/bin/sh"
    return run_process([shell, str(script)], cwd=spec["workdir"], env=env, log=log, timeout=spec.get("timeout"))


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
