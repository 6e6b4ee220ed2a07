"""A Flink session cluster's REST API (the JobManager's web monitor): the calls this kind makes.

Plain HTTP with `requests`; every failure becomes an ExecutorError naming the call, or
ExecutorUnavailable when the JobManager cannot be reached at all.
"""

from __future__ import annotations

import os
import time
from typing import Any

import requests

from scheduler.base import ExecutorError, ExecutorUnavailable

TIMEOUT = 10.0  # seconds per call (an upload gets more)


class FlinkRest:
    """The REST endpoint of one JobManager, e.g. http://127.0.0.1:8081."""

    def __init__(self, url: str, timeout: float = TIMEOUT):
        url = (url or "").strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ExecutorError(f"a Flink cluster's REST URL starts with http:// or https://, not {url!r}")
        self.url = url
        self.timeout = timeout
        self.http = requests.Session()

    def call(self, method: str, path: str, *, json: Any = None, files: Any = None,
             timeout: float | None = None, ok: tuple[int, ...] = (200, 202)) -> Any:
        try:
            response = self.http.request(method, self.url + path, json=json, files=files,
                                         timeout=timeout or self.timeout)
        except requests.RequestException as exc:
            raise ExecutorUnavailable(f"Flink REST {self.url} cannot be reached ({method} {path}): {exc}")
        if response.status_code not in ok:
            raise ExecutorError(f"Flink REST {method} {path}: HTTP {response.status_code}: {_errors(response)}")
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise ExecutorError(f"Flink REST {method} {path}: the answer is not JSON")

    # ---- the cluster ----------------------------------------------------------------------

    def overview(self) -> dict:
        return self.call("GET", "/overview")

    def config(self) -> dict:
        return self.call("GET", "/config")

    def taskmanagers(self) -> list[dict]:
        return list(self.call("GET", "/taskmanagers").get("taskmanagers") or [])

    def jobmanager_config(self) -> dict[str, str]:
        return {item.get("key"): item.get("value") for item in self.call("GET", "/jobmanager/config") or []}

    # ---- jobs -----------------------------------------------------------------------------

    def jobs(self) -> list[dict]:
        """Every job the cluster knows (running and finished), with name, state and times."""
        return list(self.call("GET", "/jobs/overview").get("jobs") or [])

    def job(self, job_id: str) -> dict | None:
        """The job's details, or None when the cluster does not know it."""
        try:
            return self.call("GET", f"/jobs/{job_id}", ok=(200,))
        except ExecutorError as exc:
            if "HTTP 404" in str(exc):
                return None
            raise

    def exceptions(self, job_id: str) -> dict:
        return self.call("GET", f"/jobs/{job_id}/exceptions")

    def upload_jar(self, path: str) -> str:
        """Upload a jar file; returns the id the cluster gave it."""
        with open(path, "rb") as fh:
            answer = self.call("POST", "/jars/upload", timeout=120,
                               files={"jarfile": (os.path.basename(path), fh, "application/x-java-archive")})
        return os.path.basename(str(answer.get("filename") or ""))

    def delete_jar(self, jar_id: str) -> None:
        self.call("DELETE", f"/jars/{jar_id}")

    def run_jar(self, jar_id: str, body: dict) -> str:
        answer = self.call("POST", f"/jars/{jar_id}/run", json=body, timeout=120)
        return str(answer.get("jobid") or "")

    def cancel(self, job_id: str) -> None:
        self.call("PATCH", f"/jobs/{job_id}?mode=cancel")

    def stop_with_savepoint(self, job_id: str, directory: str, *, drain: bool = False,
                            timeout: float = 120.0) -> str:
        """Stop the job with a savepoint in `directory` and wait for it; returns its location."""
        trigger = self.call("POST", f"/jobs/{job_id}/stop",
                            json={"targetDirectory": directory, "drain": drain})
        request = trigger.get("request-id")
        if not request:
            raise ExecutorError(f"Flink REST: stopping job {job_id} gave no trigger id")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.call("GET", f"/jobs/{job_id}/savepoints/{request}")
            if (answer.get("status") or {}).get("id") == "COMPLETED":
                operation = answer.get("operation") or {}
                if operation.get("failure-cause"):
                    cause = operation["failure-cause"]
                    raise ExecutorError(f"stop with savepoint of job {job_id} failed: "
                                        f"{first_line(cause.get('stack-trace') or cause.get('class') or '')}")
                return str(operation.get("location") or "")
            time.sleep(0.2)
        raise ExecutorError(f"stop with savepoint of job {job_id}: no savepoint after {timeout:.0f}s")


def first_line(text: str) -> str:
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), "")


def _errors(response: requests.Response) -> str:
    try:
        errors = response.json().get("errors") or []
    except ValueError:
        return response.text[:300]
    # Flink puts a whole Java stack trace into one error: its first line and its deepest cause
    # say what went wrong.
    return "; ".join(_summary(str(e)) for e in errors)[:800] or response.reason


def _summary(trace: str) -> str:
    causes = [line.strip() for line in trace.splitlines() if line.strip().startswith("Caused by:")]
    head = first_line(trace)
    return f"{head} ({causes[-1]})" if causes else head
