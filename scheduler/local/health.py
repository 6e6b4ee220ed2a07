"""Readiness probes for local replicas and addons: HTTP GET, a command, or a TCP connect."""

from __future__ import annotations

import http.client
import socket
import subprocess
from dataclasses import dataclass

PROBE_TIMEOUT = 2.0  # seconds one probe may take
PROBE_PERIOD = 1.0  # seconds between probes of one replica
FAILURE_THRESHOLD = 3  # consecutive failures before a ready replica is no longer ready
# A replica without a health check (and no port) is ready once it has been up this long: one that
# exits at once is never reported ready, however soon after its start the status is read.
UP_WITHOUT_CHECK = 1.0


@dataclass(frozen=True)
class Probe:
    """What to check: kind is http, exec, tcp or none (ready once up UP_WITHOUT_CHECK seconds)."""

    kind: str
    port_index: int = 0  # which of the replica's allocated ports (http, tcp)
    path: str = "/"
    command: str = ""
    duration: int = 120  # seconds a replica may take to become ready before it is restarted

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def http_ok(port: int, path: str, timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "dice-local-probe"})
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        return False, f"GET {path}: {exc.__class__.__name__}: {exc}"
    finally:
        conn.close()
    return 200 <= status < 400, f"GET {path}: HTTP {status}"


def tcp_ok(port: int, timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True, "connected"
    except OSError as exc:
        return False, f"connect {port}: {exc}"


def exec_ok(command: str, cwd: str | None, env: dict[str, str], timeout: float = PROBE_TIMEOUT,
            wrap: list[str] | None = None) -> tuple[bool, str]:
    """`wrap`: the full command line that runs `command` (in the replica's sandbox)."""
    try:
        done = subprocess.run(
            wrap or ["/bin/sh", "-c", command],
            cwd=None if wrap else cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        return False, f"{command!r} timed out after {timeout:g}s"
    except OSError as exc:
        return False, f"{command!r}: {exc}"
    tail = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()[-1:]
    return done.returncode == 0, f"{command!r} exited {done.returncode}" + (f": {tail[0]}" if tail else "")


def check(probe: Probe, ports: list[int], cwd: str | None, env: dict[str, str],
          wrap: list[str] | None = None) -> tuple[bool, str]:
    """Run one probe against a replica listening on `ports` (`wrap`: see exec_ok)."""
    if probe.kind == "http":
        return http_ok(ports[probe.port_index], probe.path)
    if probe.kind == "tcp":
        return tcp_ok(ports[probe.port_index])
    if probe.kind == "exec":
        return exec_ok(probe.command, cwd, env, wrap=wrap)
    return True, "started"
