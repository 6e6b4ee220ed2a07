"""Flink jobs on a session cluster: jar jobs through the REST API, PyFlink jobs through
`flink run -py` in a sandboxed local process, and their status, cancel, stop with a savepoint.

A job's Flink id is derived from its name (submit.flink_job_id), so submitting a name twice
finds the first job; what the REST API does not say (which kind of job, the client process of a
Python job, the savepoint it stopped with) is kept in a small record per job under the
cluster's directory.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from scheduler.base import ExecutorError, JobSpec, JobState, JobStatus, LogLine
from scheduler.flink.rest import FlinkRest, first_line
from scheduler.flink.session import client_conf, flink_home
from scheduler.flink.submit import Submission, confined, flink_job_id, parse_command
from scheduler.local import LocalExecutor

# Flink's job states -> the engine's (RESTARTING and FAILING are still running: Flink retries).
STATES = {
    "INITIALIZING": JobState.PENDING, "CREATED": JobState.PENDING, "RECONCILING": JobState.PENDING,
    "RUNNING": JobState.RUNNING, "RESTARTING": JobState.RUNNING, "FAILING": JobState.RUNNING,
    "CANCELLING": JobState.RUNNING, "FINISHED": JobState.SUCCEEDED, "FAILED": JobState.FAILED,
    "CANCELED": JobState.CANCELLED, "SUSPENDED": JobState.FAILED,
}
TASKS_TIMEOUT = 60.0  # seconds a stop waits for a RUNNING job's tasks to be running
_SAFE = str.maketrans(dict.fromkeys("/\\\x00", "_"))


def all_tasks_running(details: dict) -> bool:
    """Every task (vertex) of a job runs (or has finished: a bounded source)."""
    vertices = details.get("vertices") or []
    return bool(vertices) and all(v.get("status") in ("RUNNING", "FINISHED") for v in vertices)


class FlinkJobs:
    """The jobs of one Flink cluster (`rest` is where it answers; `local` runs PyFlink clients)."""

    def __init__(self, cluster_name: str, rest: FlinkRest, directory: Path, local: LocalExecutor,
                 venv: Path, mounts: dict[str, str], env: dict[str, str]):
        self.cluster = cluster_name
        self.rest = rest
        self.dir = directory
        self.local = local
        self.venv = venv
        self.mounts = mounts
        self.env = env

    # ---- records ----------------------------------------------------------------------------

    def _record_path(self, namespace: str, name: str) -> Path:
        return self.dir / "jobs" / (namespace or "_").translate(_SAFE) / f"{name.translate(_SAFE)}.json"

    def record(self, name: str, namespace: str = "") -> dict | None:
        try:
            return json.loads(self._record_path(namespace, name).read_text())
        except (OSError, ValueError):
            return None

    def taken(self, name: str, namespace: str = "") -> bool:
        """Whether a job of this name was run before in the namespace: its record is kept, or the
        cluster still knows its job id. A name is never given to a second job: its old record would
        stand for the new one, and Flink refuses a second submission of a job id it knows."""
        if self.record(name, namespace) is not None:
            return True
        try:
            return self.rest.job(flink_job_id(self.cluster, namespace, name)) is not None
        except ExecutorError:
            return False  # the cluster does not answer: the submission will say so

    def _save(self, record: dict) -> None:
        path = self._record_path(record["namespace"], record["name"])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(path)

    # ---- submit -------------------------------------------------------------------------------

    def run(self, job: JobSpec, *, client: bool = False) -> JobStatus:
        """Submit the job (once: a name submitted before finds its first job). A jar goes over REST,
        unless `client`: then, as a Python program always does, through `flink run` in the tenant's
        sandbox, whose environment (job.envs) the jar's main() reads."""
        existing = self.record(job.name, job.namespace)
        if existing:
            return self.status(job.name, job.namespace)
        where = f"job {job.name!r}"
        sub = parse_command(job.command, f"{where}: command")
        job_id = flink_job_id(self.cluster, job.namespace, job.name)
        allowed = list(job.mounts)
        record = {"name": job.name, "namespace": job.namespace, "job_id": job_id, "kind": sub.kind,
                  "submitted": time.time(), "labels": dict(job.labels)}
        if sub.kind == "jar" and not client:
            jar = confined(sub.jar, job.workdir, allowed, f"{where}: jar")
            self._run_jar(jar, sub, job, job_id)
        elif sub.kind == "jar":
            jar = confined(sub.jar, job.workdir, allowed, f"{where}: jar")
            record["client"] = self._run_python(jar, sub, job, job_id)
        else:
            program = confined(sub.python, job.workdir, allowed, f"{where}: -py")
            record["client"] = self._run_python(program, sub, job, job_id)
        self._save(record)
        return self.status(job.name, job.namespace)

    def _run_jar(self, jar: str, sub: Submission, job: JobSpec, job_id: str) -> None:
        jar_id = self.rest.upload_jar(jar)
        body: dict = {"programArgsList": list(sub.args), "jobId": job_id,
                      "flinkConfiguration": {**sub.conf, "pipeline.name": job.name}}
        if sub.entry_class:
            body["entryClass"] = sub.entry_class
        if sub.parallelism:
            body["parallelism"] = sub.parallelism
        if sub.savepoint:
            body["savepointPath"] = sub.savepoint
            body["allowNonRestoredState"] = sub.allow_non_restored
        try:
            self.rest.run_jar(jar_id, body)
        finally:
            self.rest.delete_jar(jar_id)  # the cluster keeps the job's classes; the upload is not needed again

    def _run_python(self, program: str, sub: Submission, job: JobSpec, job_id: str) -> str:
        """`flink run -py` (or `flink run JAR`) as a local job of the tenant, in its sandbox: the
        engine's venv and Python read-only, the program's directory as the work directory."""
        home = flink_home(self.venv)
        python = str(self.venv / "bin" / "python")
        host = self.rest.url.split("://", 1)[1]
        argv = [str(home / "bin" / "flink"), "run", "-m", host, "-pyclientexec", python, "-pyexec", python,
                f"-Dpipeline.name={job.name}", f"-D$internal.pipeline.job-id={job_id}"]
        for key, value in sub.conf.items():
            argv.append(f"-D{key}={value}")
        if sub.parallelism:
            argv += ["-p", str(sub.parallelism)]
        if sub.savepoint:
            argv += ["-s", sub.savepoint] + (["-n"] if sub.allow_non_restored else [])
        if sub.kind == "jar":  # the client runs the jar's main(), which builds and submits the job
            argv += [*(["-c", sub.entry_class] if sub.entry_class else []), program, *sub.args]
        else:
            argv += ["-py", program, *sub.args]
        workdir = job.workdir or os.path.dirname(program)
        client = f"client-{job.name}"
        private = self.dir / "clients" / (job.namespace or "_").translate(_SAFE) / client.translate(_SAFE)
        envs = {**self.env, **job.envs, **client_conf(self.venv, private, self.rest.url),
                "PYFLINK_CLIENT_EXECUTABLE": python}
        self.local.run_job(JobSpec(name=client, namespace=job.namespace or "_", command=argv, envs=envs,
                                   workdir=workdir, mem=max(job.mem, 768), cpu=job.cpu, timeout=job.timeout,
                                   labels=dict(job.labels), tenant=job.tenant or job.namespace,
                                   mounts={**self.mounts, **job.mounts, workdir: "rw", str(private): "rw"}))
        return client

    # ---- status -------------------------------------------------------------------------------

    def status(self, name: str, namespace: str = "") -> JobStatus:
        record = self.record(name, namespace)
        if record is None:
            return JobStatus(name=name, state=JobState.MISSING)
        details = self.rest.job(record["job_id"])
        if details is None:
            return self._without_job(record)
        state = str(details.get("state") or "")
        mapped = STATES.get(state, JobState.PENDING)
        message = state
        if state in ("FAILED", "FAILING", "RESTARTING"):
            message = f"{state}: {self.root_exception(record['job_id'])}".rstrip(": ")
        elif record.get("savepoint") and mapped.finished:
            message = f"{state}: stopped with savepoint {record['savepoint']}"
        history = record.setdefault("history", [])
        if not history or history[-1][1] != message:  # what the job's log shows: each state it was seen in
            history.append([time.time(), message])
            self._save(record)
        start = details.get("start-time") or 0
        end = details.get("end-time") or 0
        return JobStatus(name=name, state=mapped, exit_code=(0 if mapped is JobState.SUCCEEDED else
                                                             1 if mapped is JobState.FAILED else None),
                         started=start / 1000 if start and start > 0 else None,
                         finished=end / 1000 if end and end > 0 else None, message=message)

    def flink_state(self, name: str, namespace: str = "") -> str:
        """Flink's own word for the job's state (RUNNING, RESTARTING...), "" when it has no job,
        and DEPLOYING while the job is RUNNING but some of its tasks are not yet: a savepoint
        needs every task running, and so does a healthy service."""
        record = self.record(name, namespace)
        details = self.rest.job(record["job_id"]) if record else None
        state = str((details or {}).get("state") or "")
        if state == "RUNNING" and not all_tasks_running(details or {}):
            return "DEPLOYING"
        return state

    def _without_job(self, record: dict) -> JobStatus:
        """The cluster has no job of that id: a Python program still submitting, or one that
        failed (or ended) before it submitted anything."""
        name = record["name"]
        client = record.get("client")
        if not client:
            return JobStatus(name=name, state=JobState.MISSING, message="the Flink cluster does not know the job")
        status = self.local.job_status(client, record["namespace"] or "_")
        if not status.state.finished and status.state is not JobState.MISSING:
            return JobStatus(name=name, state=JobState.PENDING, started=status.started, message="submitting")
        tail = [line.text for line in self.local.job_logs(client, record["namespace"] or "_")]
        reason = next((t for t in reversed(tail) if "Exception" in t or "Error" in t), tail[-1] if tail else "")
        if status.state is JobState.SUCCEEDED:
            reason = "the program ended without submitting a job"
        return JobStatus(name=name, state=JobState.FAILED if status.state is not JobState.CANCELLED else status.state,
                         exit_code=status.exit_code, started=status.started, finished=status.finished,
                         message=(reason or status.message)[:500])

    def root_exception(self, job_id: str) -> str:
        try:
            answer = self.rest.exceptions(job_id)
        except ExecutorError:
            return ""
        text = answer.get("root-exception") or ""
        if not text:
            history = (answer.get("exceptionHistory") or {}).get("entries") or []
            text = (history[0].get("stacktrace") or history[0].get("exceptionName") or "") if history else ""
        return first_line(text)

    # ---- cancel and stop ------------------------------------------------------------------------

    def cancel(self, name: str, namespace: str = "") -> None:
        record = self.record(name, namespace)
        if record is None:
            return
        if record.get("client"):
            self.local.cancel_job(record["client"], record["namespace"] or "_")
        details = self.rest.job(record["job_id"])
        if details is not None and STATES.get(str(details.get("state")), JobState.PENDING) in (JobState.PENDING, JobState.RUNNING):
            self.rest.cancel(record["job_id"])

    def stop_with_savepoint(self, name: str, namespace: str, directory: str) -> str:
        """Stop a running job with a savepoint in `directory`; returns the savepoint's path."""
        record = self.record(name, namespace)
        if record is None:
            raise ExecutorError(f"no Flink job {name!r} to stop")
        deadline = time.monotonic() + TASKS_TIMEOUT
        state = self.flink_state(name, namespace)
        while state == "DEPLOYING" and time.monotonic() < deadline:
            time.sleep(0.3)
            state = self.flink_state(name, namespace)
        if state != "RUNNING":
            raise ExecutorError(f"Flink job {name!r} is {state or 'not on the cluster'}: only a RUNNING job "
                                "stops with a savepoint")
        location = self.rest.stop_with_savepoint(record["job_id"], directory)
        record["savepoint"] = location
        self._save(record)
        return location

    # ---- logs -----------------------------------------------------------------------------------

    def logs(self, name: str, namespace: str = "", *, follow: bool = False) -> Iterator[LogLine]:
        """The client's output (a Python job), then each state the job was seen in and, when it
        fails, its root exception. TaskManager output is not included: a session cluster's
        TaskManagers are shared by every job, so their stdout is not one tenant's."""
        record = self.record(name, namespace)
        if record is None:
            return
        number = 0
        if record.get("client"):
            for line in self.local.job_logs(record["client"], record["namespace"] or "_", follow=follow):
                number += 1
                yield LogLine(source=name, number=number, timestamp=line.timestamp, text=line.text, stream=line.stream)
        shown = 0
        while True:
            status = self.status(name, namespace)  # records a new state in the history
            history = (self.record(name, namespace) or {}).get("history") or []
            for stamp, message in history[shown:]:
                number += 1
                yield LogLine(source=name, number=number, timestamp=stamp, text=f"flink job {record['job_id']}: {message}")
            shown = len(history)
            if not follow or status.state.finished or status.state is JobState.MISSING:
                return
            time.sleep(0.5)
