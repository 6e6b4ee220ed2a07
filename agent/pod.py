"""The agent beside a step on Kubernetes: `restore` (init container) and `sidecar` (native sidecar).

The step container runs /dice/spec/run.sh: the commands with stdout and stderr captured to the
files named in spec["output"], then the exit code into output["exit"]; it waits for
output["stored"] before it ends, and hands result.json to Kubernetes as its termination message.
The sidecar follows those files as they grow and prints them as the agent's numbered JSON lines
(so the pod log of container `agent` is the step's log), and once the exit file appears it
collects outputs, stores the context on success, writes the result and marks it stored.

The context: a pod has a filesystem of its own, so what later steps need travels through the
console's context store (apps/pipelines/context_store.py), named by spec["context"]
{"url", "token", "max_bytes"} (the token comes in the step's Secret and is masked in every line):

- restore downloads the directory of each earlier step (spec["dirs"], alias -> path) and each
  cache (spec["caches"]) and unpacks them with the tarfile "data" filter: an entry that would land
  outside its directory (`../x`, an absolute path, a link pointing out, a device) is skipped and
  named in the log. A directory that cannot be fetched fails the step (the step container then
  runs nothing and the sidecar reports why); a cache that cannot be fetched is only logged.
- the sidecar, after the step exits 0, uploads the step's working directory (as dirs.<alias>)
  and each cache path; the result lists the caches stored (key, archive, size) as on local.
  A directory that cannot be stored fails the step: later steps would miss it.

Without spec["context"] (the console has no DICE_CONSOLE_URL) restore says in the log that
nothing is carried between steps, and the pod works on its own emptyDir as before.
The restore's log lines also go to output["restore_log"], which the sidecar prints first, so
they are part of the step's log.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from urllib.parse import quote

from agent.archive import Unpacker, unpack
from agent.runner import LogOut, notify, read_metafile, restore, store_caches, write_json_atomic

POLL = 0.2  # seconds between looks at the step's files
TIMEOUT = 60  # seconds: to connect, and for each read of a download
PUT_TIMEOUT = 600  # seconds an upload may wait for the console's answer (it unpacks a directory first)
ATTEMPTS = 3  # tries of one download or upload when the console does not answer or answers 5xx
BACKOFF = 2.0  # seconds before the second try, twice that before the third
NOT_CARRIED = ("context: not carried between steps: the console has no DICE_CONSOLE_URL, so on Kubernetes "
               "this step starts without earlier steps' directories and caches, and keeps nothing for later steps")


def human(size: float) -> str:
    """1536 -> '1.5 KiB'."""
    if size < 1024:
        return f"{int(size)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024 or unit == "TiB":
            break
    return f"{size:.1f} {unit}"


def _count(files: int, size: int) -> str:
    return f"{files} file{'' if files == 1 else 's'}, {human(size)}"


class StoreError(Exception):
    """The context store refused, or did not answer after the retries."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would carry the token elsewhere: refuse it (DICE_CONSOLE_URL must be the final URL)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Store:
    """The console's context store for one run: GET and PUT of tar.gz archives."""

    def __init__(self, context: dict, log: LogOut) -> None:
        self.url = str(context["url"]).rstrip("/") + "/"
        self.token = str(context["token"])
        self.max_bytes = int(context.get("max_bytes") or 0)
        self.log = log
        self.opener = urllib.request.build_opener(_NoRedirect)

    def _request(self, path: str, method: str = "GET", **kwargs) -> urllib.request.Request:
        headers = {"Authorization": f"Bearer {self.token}", "User-Agent": "dice-agent", **kwargs.pop("headers", {})}
        return urllib.request.Request(self.url + path, method=method, headers=headers, **kwargs)

    def _retrying(self, what: str, fn):
        last = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                self.log.system(f"context: {what}: {last}; trying again")
                time.sleep(BACKOFF * attempt)
            try:
                return fn()
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code} {_detail(exc)}".strip()
                if exc.code < 500:
                    if 300 <= exc.code < 400:
                        last += " (a redirect: set DICE_CONSOLE_URL to the console's final address)"
                    raise StoreError(last) from None
            except (urllib.error.URLError, OSError, EOFError, tarfile.TarError, zlib.error) as exc:
                last = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
        raise StoreError(f"no answer after {ATTEMPTS} tries: {last}")

    def download(self, path: str, target: Path, what: str) -> Unpacker | None:
        """Unpack the archive at path into target (made when there is one); None when none is stored."""

        def once() -> Unpacker | None:
            try:
                response = self.opener.open(self._request(path), timeout=TIMEOUT)
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    return None
                raise
            with response, tarfile.open(fileobj=response, mode="r|gz") as tar:
                return unpack(tar, target)

        return self._retrying(what, once)

    def upload(self, path: str, source: Path, scratch: Path, what: str) -> tuple[int, int, int]:
        """Pack source into a tar.gz in scratch and PUT it; (files, bytes of files, bytes sent)."""
        counted = {"files": 0, "bytes": 0}

        def count(info: tarfile.TarInfo) -> tarfile.TarInfo:
            if info.isfile():
                counted["files"] += 1
                counted["bytes"] += info.size
            return info

        scratch.mkdir(parents=True, exist_ok=True)
        packed = scratch / f".upload-{os.getpid()}-{threading.get_ident()}.tar.gz"
        try:
            with tarfile.open(packed, "w:gz", compresslevel=6) as tar:
                tar.add(source, arcname=".", filter=count)
            size = packed.stat().st_size
            if self.max_bytes and size > self.max_bytes:
                raise StoreError(f"{human(size)} packed is more than the console takes ({human(self.max_bytes)}, "
                                 "DICE_PIPELINE_CONTEXT_MAX_BYTES)")

            def once() -> None:
                with packed.open("rb") as body:
                    request = self._request(path, "PUT", data=body, headers={
                        "Content-Length": str(size), "Content-Type": "application/gzip"})
                    self.opener.open(request, timeout=PUT_TIMEOUT).close()

            self._retrying(what, once)
        finally:
            packed.unlink(missing_ok=True)
        return counted["files"], counted["bytes"], size


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read() or b"{}").get("detail") or exc.reason)
    except (ValueError, OSError, AttributeError):
        return str(exc.reason)


def _dir_path(alias: str) -> str:
    return f"dirs/{quote(alias, safe='')}/"


def _cache_path(key: str) -> str:
    return f"caches/?key={quote(key, safe='')}"


def _skipped(log: LogOut, what: str, unpacker: Unpacker) -> None:
    for reason in unpacker.skipped[:10]:
        log.system(f"context: {what}: skipped an entry: {reason}")
    if len(unpacker.skipped) > 10:
        log.system(f"context: {what}: skipped {len(unpacker.skipped) - 10} more entries")


def _restore_from(store: Store, spec: dict, log: LogOut) -> str:
    """Fill the pod's paths from the store; returns why the step cannot run, or ''."""
    Path(spec["workdir"]).mkdir(parents=True, exist_ok=True)
    for alias, path in sorted((spec.get("dirs") or {}).items()):
        what = f"dirs.{alias}"
        Path(path).mkdir(parents=True, exist_ok=True)
        try:
            got = store.download(_dir_path(alias), Path(path), what)
        except StoreError as exc:
            return f"{what}: {exc}"
        if got is None:
            log.system(f"context: {what} was not stored (that step kept nothing): it starts empty")
            continue
        _skipped(log, what, got)
        log.system(f"context: restored {what} ({_count(got.files, got.bytes)})")
    for cache in spec.get("caches") or []:
        what = f"cache {cache['key']}"
        try:
            got = store.download(_cache_path(cache["key"]), Path(cache["path"]), what)
        except StoreError as exc:
            log.system(f"{what}: not restored: {exc}")
            continue
        if got is None:
            log.system(f"{what}: nothing stored yet")
            continue
        _skipped(log, what, got)
        log.system(f"{what}: restored into {cache['path']} ({_count(got.files, got.bytes)})")
    return ""


def _store_into(store: Store, spec: dict, log: LogOut) -> tuple[list[dict], str]:
    """Upload the step's directory and its caches; (caches stored, why the step fails or '')."""
    scratch = Path(spec["result"]).parent
    alias, workdir = spec.get("alias") or "step", Path(spec["workdir"])
    what = f"dirs.{alias}"
    if workdir.is_dir():
        try:
            files, size, sent = store.upload(_dir_path(alias), workdir, scratch, what)
        except StoreError as exc:
            return [], f"storing {what} failed: {exc}"
        log.system(f"context: stored {what} ({_count(files, size)}; {human(sent)} sent)")
    else:
        log.system(f"context: the working directory {workdir} is gone: nothing stored for {what}")
    stored = []
    for cache in spec.get("caches") or []:
        source, what = Path(cache["path"]), f"cache {cache['key']}"
        if not source.is_dir():
            log.system(f"{what}: {source} does not exist, not stored")
            continue
        try:
            files, size, sent = store.upload(_cache_path(cache["key"]), source, scratch, what)
        except StoreError as exc:
            log.system(f"{what}: not stored: {exc}")
            continue
        stored.append({"key": cache["key"], "archive": cache["archive"], "size": sent})
        log.system(f"{what}: stored ({_count(files, size)}; {human(sent)} sent)")
    return stored, ""


class _Tee:
    def __init__(self, *outs) -> None:
        self.outs = outs

    def write(self, text: str) -> None:
        for out in self.outs:
            out.write(text)

    def flush(self) -> None:
        for out in self.outs:
            out.flush()


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
    """Init container: make the working directory, fetch earlier steps' dirs and the caches.
    A failure is left in output["restore_failed"] for the step and the sidecar (the pod goes on,
    so the step's result tells why); without that file in the spec it is the exit code."""
    files = spec.get("output") or {}
    log_file = None
    if files.get("restore_log"):
        Path(files["restore_log"]).parent.mkdir(parents=True, exist_ok=True)
        log_file = open(files["restore_log"], "a", encoding="utf-8")  # noqa: SIM115
    try:
        log = LogOut(spec.get("mask") or [], _Tee(out or sys.stdout, log_file) if log_file else out)
        context = spec.get("context") or {}
        try:
            if context.get("url"):
                failed = _restore_from(Store(context, log), spec, log)
            else:
                log.system(NOT_CARRIED)
                restore(spec, log)
                failed = ""
        except Exception as exc:  # the step must learn why, not just see the pod fail
            failed = f"agent error: {exc}"
        if failed:
            log.system(f"context: restoring failed: {failed}")
    finally:
        if log_file is not None:
            log_file.close()
    if failed and files.get("restore_failed"):
        Path(files["restore_failed"]).write_text(log.masked(failed) + "\n", encoding="utf-8")
        return 0
    return 1 if failed else 0


def _replay(path: str | None, log: LogOut) -> None:
    """The restore's lines, first in the step's log."""
    if not path:
        return
    try:
        raw = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    for text in raw.splitlines():
        try:
            record = json.loads(text)
            log.line(str(record["text"]), str(record.get("stream") or "system"))
        except (ValueError, KeyError, TypeError):
            log.system(text)


def _exit_written(path: Path) -> bool:
    """Whether run.sh has written its exit code: `echo "$code" >exit` creates the file and then
    writes the line, so a file without its newline yet is not the code (read empty in between, it
    was taken for 1: a step that succeeded failed now and then, under load, saying nothing)."""
    try:
        return path.read_text().endswith("\n")
    except OSError:
        return False


def sidecar(spec: dict, out=None, *, stop: threading.Event | None = None, linger: bool = True) -> dict:
    """Follow the step's output, then collect, store and report. With linger, stay up (doing
    nothing) until SIGTERM, as a native sidecar must not end before the step container."""
    log = LogOut(spec.get("mask") or [], out)
    files = spec["output"]
    _replay(files.get("restore_log"), log)
    followers = [_Follower(files["stdout"], "stdout", log), _Follower(files["stderr"], "stderr", log)]
    stop = stop or threading.Event()
    started = time.time()
    exit_file = Path(files["exit"])
    while not _exit_written(exit_file) and not stop.is_set():
        for follower in followers:
            follower.poll()
        stop.wait(POLL)
    for follower in followers:
        follower.poll(final=True)
    error, stored = "", []
    try:
        code = int(exit_file.read_text().strip())
    except (OSError, ValueError):
        code, error = 1, "the step ended without an exit code"
        log.system(error)
    context = spec.get("context") or {}
    restore_failed = Path(files["restore_failed"]) if files.get("restore_failed") else None
    if restore_failed is not None and restore_failed.exists():
        code = code or 1
        error = f"restoring the context failed: {restore_failed.read_text(encoding='utf-8').strip()}"
    elif code == 0 and context.get("url"):
        try:
            stored, error = _store_into(Store(context, log), spec, log)
        except Exception as exc:
            stored, error = [], f"storing the context failed: {exc}"
        if error:
            code = 1
            log.system(error)
    elif code == 0:
        try:
            stored = store_caches(spec, log)
        except OSError as exc:
            error = f"storing caches failed: {exc}"
    outputs = {**read_metafile(spec.get("metafile")), **log.meta}
    result = {
        "exit_code": code, "outputs": {k: log.masked(v) for k, v in outputs.items()},
        "started": started, "finished": time.time(), "timed_out": False, "caches": stored,
        "error": log.masked(error), "lines": log.number,
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
