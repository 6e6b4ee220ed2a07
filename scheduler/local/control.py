"""The control socket of the process supervising a local root.

One process supervises a root at a time (its lock, executor.py). A change asked of the cluster in
another process (a web process, while a Celery worker supervises: production mode) is sent over
this socket and made by the supervisor, which answers with the outcome or the error, so a scale,
restart or delete from the web UI, the API or the CLI works whichever process supervises.

The socket is `<root>/control.sock`, mode 0600 in the console's own folder; a connection from any
other uid than the console's (a tenant's sandboxed process) is closed unanswered (SO_PEERCRED).
One JSON request per connection, one JSON answer: {"ok": true, "result": ...} or
{"error": "...", "unavailable": bool}."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import struct
import threading
from pathlib import Path

from scheduler.base import ExecutorError, ExecutorUnavailable, RuntimeRef

log = logging.getLogger(__name__)

SOCKET = "control.sock"
MAX_REQUEST = 64 * 1024
TIMEOUT = 120.0  # seconds a caller waits for the supervisor (a delete stops every process: seconds)
OPS = ("scale", "restart", "destroy", "cancel_job")


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


class ControlServer:
    """Serves the supervisor's executor to the console's other processes."""

    def __init__(self, executor) -> None:
        self.executor = executor
        self.path = Path(executor.root) / SOCKET
        self.sock: socket.socket | None = None
        self._ino = None

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # a dead supervisor's: this process holds the root's lock now
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(self.path))
        except OSError as exc:  # e.g. a root whose path is too long for a socket's name
            sock.close()
            log.warning("no control socket at %s (%s): only this process can change the cluster", self.path, exc)
            return
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        self._ino = os.stat(self.path).st_ino
        sock.listen(32)
        self.sock = sock
        threading.Thread(target=self._accept, name="dice-local-control", daemon=True).start()

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.close()
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self._ino:  # not a successor's socket
                os.unlink(self.path)

    def _accept(self) -> None:
        while self.sock is not None:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), name="dice-local-control-call", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                if _peer_uid(conn) != os.geteuid():
                    return
                conn.settimeout(10)
                raw = b""
                while not raw.endswith(b"\n") and len(raw) <= MAX_REQUEST:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    raw += chunk
                answer = self._handle(raw)
            except OSError:
                return
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(answer).encode() + b"\n")

    def _handle(self, raw: bytes) -> dict:
        try:
            request = json.loads(raw)
            op = request["op"]
            if op not in OPS:
                raise ValueError(f"unknown operation {op!r}")
            ex = self.executor
            if op == "cancel_job":
                ex.cancel_job(str(request["name"]), str(request.get("namespace", "")))
            else:
                runtime = RuntimeRef(**request["runtime"])
                if op == "scale":
                    ex.scale(runtime, str(request["service"]), int(request["replicas"]))
                elif op == "restart":
                    ex.restart(runtime, str(request["service"]))
                else:
                    ex.destroy(runtime)
        except ExecutorUnavailable as exc:
            return {"error": str(exc), "unavailable": True}
        except ExecutorError as exc:
            return {"error": str(exc), "unavailable": False}
        except (ValueError, KeyError, TypeError) as exc:
            return {"error": f"bad control request: {exc}", "unavailable": False}
        return {"ok": True}


def call(root: Path, request: dict, holder: str = "", timeout: float = TIMEOUT) -> dict:
    """Send one request to the process supervising `root`; its answer, or ExecutorError /
    ExecutorUnavailable with the supervisor's error (or why it could not be asked)."""
    path = Path(root) / SOCKET
    who = f"the process supervising the local cluster at {root}" + (f" (pid {holder})" if holder else "")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(json.dumps(request).encode() + b"\n")
            raw = b""
            while not raw.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                raw += chunk
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise ExecutorUnavailable(f"{who} does not answer ({exc.strerror}): is a worker running? "
                                  "try again once one supervises it") from None
    except TimeoutError:
        raise ExecutorUnavailable(f"{who} did not answer within {timeout:.0f} s") from None
    except OSError as exc:
        raise ExecutorUnavailable(f"{who} could not be asked: {exc}") from None
    try:
        answer = json.loads(raw)
    except ValueError:
        raise ExecutorUnavailable(f"{who} stopped before it answered") from None
    if "error" in answer:
        raise (ExecutorUnavailable if answer.get("unavailable") else ExecutorError)(answer["error"])
    return answer
