"""dice.yml jobs with `engine: flink` as a Flink session cluster runs them for a runtime: bounded
(batch) jobs, each run followed to its end (what FlinkExecutor.apply, status, destroy and
fire_schedules do for jobs; services.py keeps the streaming services).

- A job is given as the `flink` action's params: `resource` (a .jar or a PyFlink .py file of the
  release: a path relative to its files), `class`, `args`, `properties` (Flink configuration,
  `-D key=value`) and `flinkConf` {parallelism; kind, jobManagerResource, taskManagerResource
  are a FlinkDeployment's, on Kubernetes}. It runs through `flink run` in the tenant's sandbox on
  the console's machine (a jar too: its main() reads the job's environment, the same as every
  job of the runtime: scheduler.envvars.engine_job_env), and the run is the Flink job it submits.
- A job without `schedule` runs once per release deployed: its run is named after the job and a
  hash of the release and of what it runs (`wordcount-3f2a9c1d`), so applying the same release
  again never submits it twice and a new release (or a changed job) runs it again.
- A job with `schedule` (5-field cron) is recorded; fire_schedules(), called by the console's beat
  every DICE_ENGINE_SCHEDULE_INTERVAL seconds, submits the run of each minute that came due
  (`wordcount-202612070200`: a second firing in that minute submits nothing).
- status(runtime) gives each job's latest run in GroupStatus.jobs (state, Flink's state and the
  root exception's first line when it failed); the runtime is healthy when every once-per-release
  run finished, progressing while one runs, degraded when one failed or was cancelled. A run over
  its job's `active_deadline` is cancelled and shown failed.
- destroy() (and a job dropped from the spec) stops the schedules and cancels the runs still going.

The record of a runtime's jobs is one JSON file under the cluster's directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import posixpath
import re
import time
from pathlib import Path
from typing import Any

from scheduler.base import (
    ExecutorError,
    GroupStatus,
    Health,
    JobSpec,
    JobState,
    JobStatus,
    RuntimeRef,
    ServiceGroup,
)
from scheduler.envvars import engine_job_env
from scheduler.flink.action import action_params
from scheduler.local.cron import due_minute, parse_cron
from scheduler.local.state import read_json, write_json

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_CONF_KEY = re.compile(r"[A-Za-z0-9_.-]+")
RUNS_KEPT = 10


def _short_hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]


def release_file(resource: str, workdir: str | None, where: str) -> str:
    """The job's .jar or .py as a file of the release (a path relative to its files, never leaving
    them): a session cluster's client reads it on this machine."""
    if _URL.match(resource) or resource.startswith("/"):
        raise ExecutorError(f"{where}.resource: {resource!r}: a Flink session cluster runs a file of the "
                            "release (a path relative to its files, e.g. jobs/wordcount.py); URLs and paths "
                            "of the image are for the Flink operator on Kubernetes")
    if not workdir:
        raise ExecutorError(f"{where}.resource: {resource!r} is a path in the release's files, and this release "
                            "has none: upload the files with the release (dice release create --spec)")
    path = posixpath.normpath(resource)
    if path == ".." or path.startswith("../"):
        raise ExecutorError(f"{where}.resource: {resource!r} leaves the release's files")
    return os.path.join(workdir, path)


def job_command(params: dict, resource: str, where: str) -> list[str]:
    """The `flink run` arguments of a dice.yml job's params, its resource as the client reads it."""
    action = action_params(params, where)
    argv = ["flink", "run"]
    if action.parallelism:
        argv += ["-p", str(action.parallelism)]
    for key, value in sorted((params.get("properties") or {}).items()):
        if not _CONF_KEY.fullmatch(str(key)) or str(key).startswith("$internal"):
            raise ExecutorError(f"{where}.properties: {key!r} is not a Flink configuration key")
        argv.append(f"-D{key}={value}")
    if action.python:
        argv += ["-py", resource]
    else:
        argv += (["-c", action.entry_class] if action.entry_class else []) + [resource]
    return argv + list(action.args)


class DeployedFlinkJobs:
    """The `engine: flink` jobs of the runtimes deployed onto one Flink cluster; `executor` is that
    cluster's FlinkExecutor (its jobs() and directory)."""

    def __init__(self, executor: Any):
        self.executor = executor
        self.folder: Path = executor.dir / "deployed-jobs"

    def _path(self, runtime: RuntimeRef) -> Path:
        return self.folder / f"{runtime.namespace}.json"

    # ---- apply -------------------------------------------------------------------------------

    def plan(self, group: ServiceGroup) -> dict[str, dict]:
        """Every job's run spec; refuses the whole group (naming the job and field) before anything runs."""
        runtime = group.runtime
        plans: dict[str, dict] = {}
        for name, job in sorted(group.spec.jobs.items()):
            where = f"jobs.{name}"
            if job.engine != "flink":
                raise ExecutorError(f"a Flink cluster runs dice.yml jobs with `engine: flink`: {where} is not one")
            if job.schedule:
                parse_cron(job.schedule)
            params = job.engine_params()
            resource = release_file(str(params.get("resource") or ""), group.workdir, where)
            command = job_command(params, resource, where)
            if not os.path.isfile(resource):
                raise ExecutorError(f"{where}.resource: {job.resource!r} is not a file of the release")
            spec = JobSpec(name=name, namespace=runtime.namespace, command=command,
                           envs=engine_job_env(group, name), workdir=group.workdir,
                           mem=int(job.resources.mem or 0) or 1024, timeout=job.active_deadline,
                           labels={**runtime.labels(), "dice.io/job": name}, tenant=runtime.org,
                           mounts={group.workdir: "ro"} if group.workdir else {})
            fields = dataclasses.asdict(spec)
            digest = _short_hash({"release": group.release, "command": command, "envs": spec.envs,
                                  "timeout": spec.timeout})
            plans[name] = {"schedule": job.schedule or "", "spec": fields, "deadline": job.active_deadline,
                           "run": "" if job.schedule else f"{name}-{digest}"}
        return plans

    def apply(self, group: ServiceGroup) -> None:
        plans = self.plan(group)
        path = self._path(group.runtime)
        old = read_json(path) or {}
        if not plans and not old:
            return  # nothing of this runtime runs here, nothing is to
        before_jobs = old.get("jobs") or {}
        for name in sorted(set(before_jobs) - set(plans)):  # dropped from the spec: its runs stop
            self._cancel_runs(group.runtime, before_jobs[name])
        if not plans:
            path.unlink(missing_ok=True)
            return
        now = time.time()
        jobs = {}
        for name, plan in plans.items():
            before = before_jobs.get(name) or {}
            entry = {**plan, **{key: before[key] for key in ("runs", "errors", "started", "timed_out") if key in before},
                     "last": before.get("last", now)}
            entry.setdefault("runs", [])
            jobs[name] = entry
        if group.workdir:
            # the client reads the release's files as the tenant's uid, as the local cluster's services do
            local = self.executor.local()
            if local.sandboxes.enabled:
                local.sandboxes.own(group.workdir, group.runtime.org, recursive=True)
        record = {"runtime": dataclasses.asdict(group.runtime), "release": group.release, "jobs": jobs}
        write_json(path, record, mode=0o600)  # the jobs' environment holds configs and addon passwords
        for name, entry in jobs.items():
            if entry["run"] and entry["run"] not in entry["runs"]:
                self._submit(path, record, name, entry["run"])

    def _submit(self, path: Path, record: dict, name: str, run: str) -> None:
        """Record the run first (a run is never submitted unrecorded), then submit it."""
        entry = record["jobs"][name]
        entry["runs"] = [*[r for r in entry["runs"] if r != run], run][-RUNS_KEPT:]
        entry.setdefault("started", {})[run] = time.time()
        entry["started"] = {r: t for r, t in entry["started"].items() if r in entry["runs"]}
        write_json(path, record, mode=0o600)
        spec = JobSpec(**{**entry["spec"], "name": run})
        try:
            self.executor.jobs().run(spec, client=True)
        except ExecutorError as exc:
            entry["errors"] = [*entry.get("errors", []), f"{run}: {exc}"][-5:]
            write_json(path, record, mode=0o600)
            raise

    # ---- status ------------------------------------------------------------------------------

    def has_jobs(self, runtime: RuntimeRef) -> bool:
        return bool((read_json(self._path(runtime)) or {}).get("jobs"))

    def runs(self, runtime: RuntimeRef, job: str) -> list[str]:
        """The job's runs kept, oldest first."""
        entry = ((read_json(self._path(runtime)) or {}).get("jobs") or {}).get(job) or {}
        return list(entry.get("runs") or [])

    def owns_run(self, run: str, namespace: str) -> bool:
        record = read_json(self.folder / f"{namespace}.json") or {}
        return any(run in (entry.get("runs") or []) for entry in (record.get("jobs") or {}).values())

    def run_status(self, runtime: RuntimeRef, entry: dict, run: str) -> tuple[JobStatus, bool]:
        """The run's status, and whether it has just been found over its deadline (and cancelled)."""
        jobs = self.executor.jobs()
        found = jobs.status(run, runtime.namespace)
        deadline = entry.get("deadline")
        timed_out = JobStatus(name=run, state=JobState.FAILED, exit_code=124, started=found.started,
                              finished=found.finished, message=f"timed out after {deadline}s (active_deadline): "
                                                                "the job was cancelled")
        if run in entry.get("timed_out", []):
            if not found.state.finished and found.state is not JobState.MISSING:
                jobs.cancel(run, runtime.namespace)  # cancelled while it was still being submitted: again
            return timed_out, False
        if found.state is JobState.MISSING:
            failed = next((e.split(": ", 1)[1] for e in entry.get("errors", []) if e.startswith(f"{run}: ")), "")
            if failed:
                return JobStatus(name=run, state=JobState.FAILED, exit_code=1, message=failed[:500]), False
        started = (entry.get("started") or {}).get(run) or found.started
        if deadline and started and not found.state.finished and time.time() - started > float(deadline):
            jobs.cancel(run, runtime.namespace)
            entry["timed_out"] = [*entry.get("timed_out", []), run][-RUNS_KEPT:]
            return timed_out, True
        return dataclasses.replace(found, name=run), False

    def status(self, runtime: RuntimeRef) -> GroupStatus:
        path = self._path(runtime)
        record = read_json(path) or {}
        if not record.get("jobs"):
            return GroupStatus(runtime, Health.MISSING, "no Flink job of this runtime runs here")
        jobs: dict[str, JobStatus] = {}
        health, reasons = Health.HEALTHY, []
        for name, entry in sorted(record["jobs"].items()):
            latest = entry["run"] or (entry["runs"][-1] if entry["runs"] else "")
            if not latest:
                jobs[name] = JobStatus(name=name, state=JobState.PENDING,
                                       message=f"scheduled ({entry['schedule']}): no run yet")
                continue
            found, cancelled = self.run_status(runtime, entry, latest)
            if cancelled:
                write_json(path, record, mode=0o600)
            jobs[name] = found
            if not entry["run"]:
                continue  # a scheduled run's outcome is shown, it does not make the runtime unhealthy
            if found.state in (JobState.FAILED, JobState.CANCELLED, JobState.MISSING):
                health = Health.DEGRADED
                reasons.append(f"job {name}: run {latest} {found.state}" + (f": {found.message}" if found.message
                                                                           else ""))
            elif not found.state.finished and health is Health.HEALTHY:
                health = Health.PROGRESSING
                reasons.append(f"job {name}: run {latest} {found.state}")
        return GroupStatus(runtime, health, "; ".join(reasons), jobs=jobs)

    # ---- schedules ---------------------------------------------------------------------------

    def fire_schedules(self, now: float | None = None) -> list[str]:
        """Submit the run of every scheduled job whose minute came due since its last firing; the
        names of the runs submitted (one failing run does not stop the others)."""
        now = time.time() if now is None else now
        fired: list[str] = []
        for path in sorted(self.folder.glob("*.json")):
            record = read_json(path)
            if not record or not record.get("jobs"):
                continue
            for name, entry in record["jobs"].items():
                if not entry.get("schedule"):
                    continue
                due = due_minute(parse_cron(entry["schedule"]), float(entry.get("last") or now), now)
                entry["last"] = now
                write_json(path, record, mode=0o600)
                if due is None:
                    continue
                run = f"{name}-{due:%Y%m%d%H%M}"
                if run in entry.get("runs", []):
                    continue
                try:
                    self._submit(path, record, name, run)
                    fired.append(run)
                except ExecutorError:
                    pass  # recorded in the entry's errors, shown as the run's state
        return fired

    # ---- cancel, destroy -----------------------------------------------------------------------

    def cancel(self, runtime: RuntimeRef, job: str) -> list[str]:
        """Cancel the job's runs still going; the runs cancelled."""
        entry = ((read_json(self._path(runtime)) or {}).get("jobs") or {}).get(job)
        if entry is None:
            raise ExecutorError(f"runtime {runtime.namespace} has no Flink job {job!r}")
        return self._cancel_runs(runtime, entry)

    def _cancel_runs(self, runtime: RuntimeRef, entry: dict) -> list[str]:
        jobs = self.executor.jobs()
        cancelled = []
        for run in entry.get("runs", []):
            state = jobs.status(run, runtime.namespace).state
            if not state.finished and state is not JobState.MISSING:
                jobs.cancel(run, runtime.namespace)
                cancelled.append(run)
        return cancelled

    def destroy(self, runtime: RuntimeRef) -> None:
        """Stop the schedules and cancel the runs still going; the record goes."""
        path = self._path(runtime)
        record = read_json(path) or {}
        for entry in (record.get("jobs") or {}).values():
            self._cancel_runs(runtime, entry)
        path.unlink(missing_ok=True)
