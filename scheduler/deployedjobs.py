"""dice.yml jobs of a data engine (`engine: spark`, `engine: flink`) as a data cluster runs them for
a runtime: what both engines' executors do for jobs in apply, status, fire_schedules, cancel and
destroy. Each engine's package says how a job becomes a run of its own (its plan: the command, the
files it reads, what it refuses) and how a run is submitted, asked about and cancelled
(scheduler/spark/deployed.py, scheduler/flink/deployed.py); the rest is here, once:

- A job without `schedule` runs once per release deployed and environment: what its run stands
  for (identity()) is the release (whose dice.yml, overlays and files are the job's whole
  definition) and the job's environment as the application gives it, keyed with the console's key;
  its run is named after the job and that (`etl-3f2a9c1d`). Applying the same release again never
  submits it twice, and a new release (or a changed variable) runs it again, as a Kubernetes Job
  of a changed template is a new Job. How the console renders the job (its command, paths, the
  platform's DICE_* variables, the naming itself) is not part of it: a console upgrade runs no job
  of an unchanged release again. A record written by an earlier console, whose run was named
  another way, is read the same way: its run stands for this release when the record's release
  and the job's recorded environment give the same identity (apply keeps that run). A run whose
  submission failed is submitted again by the next apply of the same release.
- A job with `schedule` (cron, the same 5 fields as a CronJob) is recorded; fire_schedules(),
  called by the console's beat every DICE_ENGINE_SCHEDULE_INTERVAL seconds, submits the run of
  each minute that came due (`etl-202612070200`: a run is named after its minute, so firing twice,
  or from two processes, never submits it twice). A schedule first fires at the first due minute
  after it was deployed.
- A run is recorded before it is submitted (a run is never submitted unrecorded); a submission
  that fails is kept as the run's error and shown as its failure.
- status(runtime) gives each job's latest run in GroupStatus.jobs; the runtime is healthy when
  every once-per-release run has succeeded, progressing while one is pending or running, and
  degraded when one failed or was cancelled (a scheduled run's outcome shows, it never makes the
  runtime unhealthy). A run over its job's `active_deadline` is cancelled and shown failed.
- cancel(runtime, job) cancels the job's runs still going; destroy() (and a job dropped from the
  spec) stops the schedules and cancels the runs still going.

The record of a runtime's jobs is one JSON file (0600, and the jobs' environment, which holds the
addons' passwords, configs and secret variables, sealed in it). Deploys (a web process or a worker), status reads (any
process) and the beat all change it: every change is a read-modify-write under an exclusive lock
of the record (RecordStore.update), and none holds the lock while it talks to the cluster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import posixpath
import re
import time
from collections.abc import Iterator
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
from scheduler.local import sealed
from scheduler.local.cron import due_minute, parse_cron
from scheduler.local.state import read_json, write_json

RUNS_KEPT = 10  # runs remembered per job (the latest is shown; older ones can still be cancelled)
ERRORS_KEPT = 5
URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# What a job's record keeps across applies (the rest is the new plan's).
KEPT = ("runs", "errors", "started", "timed_out", "aliases")
# The platform's own variables of a job (scheduler.envvars.platform_envs): not part of what a run stands for.
PLATFORM_PREFIX = "DICE_"


def short_hash(data: Any) -> str:
    """The plain 8-character hash earlier consoles named a run-once run with (ran_before reads such records)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]


def release_path(resource: str, workdir: str | None, where: str) -> str:
    """A job's file given as a path relative to the release's files, as this machine reads it; it
    must stay inside the release's folder."""
    if not workdir:
        raise ExecutorError(f"{where}.resource: {resource!r} is a path in the release's files, and this release "
                            "has none: upload the files with the release (dice release create --spec)")
    path = posixpath.normpath(resource)
    if path == ".." or path.startswith("../"):
        raise ExecutorError(f"{where}.resource: {resource!r} leaves the release's files")
    return os.path.join(workdir, path)


class RecordStore:
    """The records of the runtimes whose jobs one data cluster runs: `<folder>/<namespace>.json`,
    mode 0600, each job's environment sealed in it as a local runtime's state seals its processes'
    (scheduler/local/sealed.py: the console's key, or without the console the folder's own).

    A reader sees a whole record (each write replaces the file atomically). A change goes through
    update(), which holds an exclusive flock on `<folder>/.lock` from its read to its write: two
    processes (or threads: each takes its own open file) changing records at once take turns, and
    neither loses what the other wrote. The lock is held only while the record is read, changed in
    memory and written, never while a cluster is asked anything."""

    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, namespace: str) -> Path:
        return self.folder / f"{namespace}.json"

    def read(self, namespace: str) -> dict:
        record = read_json(self.path(namespace)) or {}
        for name, entry in (record.get("jobs") or {}).items():
            spec = entry.get("spec") or {}
            if "envs" in spec:
                spec["envs"] = sealed.open_value(self.folder, spec["envs"], f"job {name} envs")
        return record

    def _write(self, namespace: str, record: dict) -> None:
        jobs = {}
        for name, entry in record["jobs"].items():
            spec = entry.get("spec") or {}
            jobs[name] = {**entry, "spec": {**spec, "envs": sealed.seal_value(self.folder, spec["envs"])}} \
                if "envs" in spec else entry
        write_json(self.path(namespace), {**record, "jobs": jobs}, mode=0o600)

    def namespaces(self) -> list[str]:
        return sorted(path.stem for path in self.folder.glob("*.json"))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the last descriptor of the open file releases the lock

    @contextlib.contextmanager
    def update(self, namespace: str) -> Iterator[dict]:
        """The namespace's record ({} when there is none) to change in place: written back when
        the block ends, removed when it has no job left; not written if the block raises."""
        with self.locked():
            record = self.read(namespace)
            yield record
            if record.get("jobs"):
                self._write(namespace, record)
            else:
                self.path(namespace).unlink(missing_ok=True)


class DeployedJobs:
    """The `engine: <engine>` jobs of the runtimes deployed onto one data cluster. An engine's
    subclass gives plan() and the three calls that reach its cluster: submit(), run_status() and
    cancel_run()."""

    engine = ""  # "spark", "flink": named in messages
    title = ""  # "Spark", "Flink"

    def __init__(self, folder: Path):
        self.records = RecordStore(folder)

    @property
    def folder(self) -> Path:
        return self.records.folder

    def _path(self, runtime: RuntimeRef) -> Path:
        return self.records.path(runtime.namespace)

    def identity(self, release: str, name: str, envs: dict[str, str]) -> str:
        """What the release's run of the job `name` stands for: the release (its dice.yml with the
        workspace's overlays and values, and its files: the job's whole definition) and the job's
        environment without the platform's own DICE_* variables (they say where it runs, which the
        runtime's record already fixes, and how the console spells them has changed before:
        DICE_WORKSPACE's case). A digest keyed with the console's key, so that it tells nothing of
        a secret value in the environment."""
        given = {key: value for key, value in envs.items() if not key.startswith(PLATFORM_PREFIX)}
        return sealed.keyed_digest(self.folder, {"release": release, "job": name, "envs": given})

    def entry(self, group: ServiceGroup, name: str, spec: JobSpec) -> dict:
        """The record's entry of a job as planned: its schedule, its run spec, its deadline and, for
        a job without schedule, the release's run, named after its identity() (a new release or a
        changed environment is a new run; the console's rendering of the job is not)."""
        job = group.spec.jobs[name]
        fields = dataclasses.asdict(spec)
        run = "" if job.schedule else f"{name}-{self.identity(group.release, name, fields['envs'])[:8]}"
        return {"schedule": job.schedule or "", "spec": fields, "deadline": job.active_deadline, "run": run}

    def ran_before(self, record: dict, name: str, old: dict, plan: dict, release: str) -> str:
        """The run the record already holds for what `plan` stands for, when an earlier console named
        it otherwise (a plain or a keyed hash of the whole spec, by the version): the entry's latest
        run-once run, submitted without error, whose release and recorded environment give the
        plan's identity. "" when there is none (the plan's own run is then the one to submit)."""
        run = old.get("run") or ""
        if not run or not plan["run"] or run == plan["run"] or run not in (old.get("runs") or []):
            return ""
        if _submit_error(old, run):
            return ""
        envs = (old.get("spec") or {}).get("envs")
        if not isinstance(envs, dict) or not record.get("release"):
            return ""
        mine = self.identity(release, name, plan["spec"]["envs"])
        return run if self.identity(str(record["release"]), name, envs) == mine else ""

    @staticmethod
    def _adopt(entry: dict, ran: str) -> None:
        """The entry's run is `ran` (found by ran_before) or one found before for the same plan
        (`aliases`: the planned name -> the earlier console's run, kept while that run is): a run
        made by an earlier console for the same release and environment is not made again."""
        aliases = {new: old for new, old in (entry.get("aliases") or {}).items() if old in entry["runs"]}
        ran = ran or aliases.get(entry["run"], "")
        if ran:
            aliases[entry["run"]] = ran
            entry["run"] = ran
        if aliases:
            entry["aliases"] = aliases
        else:
            entry.pop("aliases", None)

    # ---- what an engine gives ----------------------------------------------------------------

    def plan(self, group: ServiceGroup) -> dict[str, dict]:
        """Each job's record entry (entry()); refuses the whole group, naming the job and the
        field, before anything runs."""
        raise NotImplementedError

    def prepare(self, group: ServiceGroup, plans: dict[str, dict]) -> None:
        """What must be done before the runs start (e.g. the release's files made the tenant's)."""

    def submit(self, spec: JobSpec) -> None:
        """Start the run (spec.name is the run's name); an ExecutorError when the cluster refuses."""
        raise NotImplementedError

    def run_status(self, run: str, namespace: str) -> JobStatus:
        raise NotImplementedError

    def cancel_run(self, run: str, namespace: str) -> None:
        raise NotImplementedError

    # ---- apply -------------------------------------------------------------------------------

    def apply(self, group: ServiceGroup) -> None:
        """Record the group's jobs and submit the release's runs; the runs of jobs dropped from the
        spec are cancelled. A run that fails to submit fails the apply (after the others were
        submitted), naming it."""
        plans = self.plan(group)
        runtime = group.runtime
        if not plans and not self.has_jobs(runtime):
            return  # nothing of this runtime runs here, nothing is to
        if plans:
            self.prepare(group, plans)
        now = time.time()
        submit: list[tuple[str, str, dict]] = []
        with self.records.update(runtime.namespace) as record:
            before = record.get("jobs") or {}
            dropped = [entry for name, entry in before.items() if name not in plans]
            jobs = {}
            for name, plan in plans.items():
                old = before.get(name) or {}
                entry = {**plan, **{key: old[key] for key in KEPT if key in old}, "last": old.get("last", now)}
                entry.setdefault("runs", [])
                if entry["run"]:
                    self._adopt(entry, self.ran_before(record, name, old, plan, group.release))
                run = entry["run"]
                if run and (run not in entry["runs"] or _submit_error(entry, run)):
                    _record_run(entry, run, now)
                    submit.append((name, run, entry["spec"]))
                jobs[name] = entry
            record.clear()
            if jobs:
                record.update({"runtime": dataclasses.asdict(runtime), "release": group.release, "jobs": jobs})
        for entry in dropped:  # dropped from the spec: its runs stop
            self._cancel_runs(runtime.namespace, entry)
        failed: list[ExecutorError] = []
        for name, run, spec in submit:
            try:
                self._submit(runtime.namespace, name, run, spec)
            except ExecutorError as exc:
                failed.append(exc)
        if failed:
            raise failed[0]

    def _submit(self, namespace: str, name: str, run: str, spec: dict) -> None:
        """Submit a run already recorded; a refusal is kept as the run's error, then raised."""
        try:
            self.submit(JobSpec(**{**spec, "name": run}))
        except ExecutorError as exc:
            with self.records.update(namespace) as record:
                entry = (record.get("jobs") or {}).get(name)
                if entry is not None and run in entry.get("runs", []):
                    entry["errors"] = [*entry.get("errors", []), f"{run}: {exc}"][-ERRORS_KEPT:]
            raise

    # ---- status ------------------------------------------------------------------------------

    def has_jobs(self, runtime: RuntimeRef) -> bool:
        return bool(self.records.read(runtime.namespace).get("jobs"))

    def runs(self, runtime: RuntimeRef, job: str) -> list[str]:
        """The job's runs kept, oldest first."""
        entry = (self.records.read(runtime.namespace).get("jobs") or {}).get(job) or {}
        return list(entry.get("runs") or [])

    def owns_run(self, run: str, namespace: str) -> bool:
        record = self.records.read(namespace)
        return any(run in (entry.get("runs") or []) for entry in (record.get("jobs") or {}).values())

    def latest(self, runtime: RuntimeRef, name: str, entry: dict, run: str) -> JobStatus:
        """The status of the job `name`'s run as its record and the cluster tell it: a failed
        submission is a failed run; a run over the job's deadline is cancelled (and recorded so)
        and failed."""
        deadline = entry.get("deadline")
        found = self.run_status(run, runtime.namespace)
        timed_out = JobStatus(name=run, state=JobState.FAILED, exit_code=124, started=found.started,
                              finished=found.finished, message=f"timed out after {deadline}s (active_deadline): "
                                                                "the job was cancelled")
        if run in entry.get("timed_out", []):
            if not found.state.finished and found.state is not JobState.MISSING:
                self.cancel_run(run, runtime.namespace)  # cancelled while it was still being submitted: again
            return timed_out
        if found.state is JobState.MISSING and (error := _submit_error(entry, run)):
            return JobStatus(name=run, state=JobState.FAILED, exit_code=1, message=error[:500])
        started = (entry.get("started") or {}).get(run) or found.started
        if (deadline and started and not found.state.finished and found.state is not JobState.MISSING
                and time.time() - started > float(deadline)):
            self.cancel_run(run, runtime.namespace)
            with self.records.update(runtime.namespace) as record:
                kept = (record.get("jobs") or {}).get(name)
                if kept is not None and run in kept.get("runs", []):
                    kept["timed_out"] = [*kept.get("timed_out", []), run][-RUNS_KEPT:]
            return timed_out
        return dataclasses.replace(found, name=run)

    def status(self, runtime: RuntimeRef) -> GroupStatus:
        record = self.records.read(runtime.namespace)
        if not record.get("jobs"):
            return GroupStatus(runtime, Health.MISSING, f"no {self.title} job of this runtime runs here")
        jobs: dict[str, JobStatus] = {}
        health, reasons = Health.HEALTHY, []
        for name, entry in sorted(record["jobs"].items()):
            latest = entry["run"] or (entry["runs"][-1] if entry["runs"] else "")
            if not latest:
                jobs[name] = JobStatus(name=name, state=JobState.PENDING,
                                       message=f"scheduled ({entry['schedule']}): no run yet")
                continue
            found = jobs[name] = self.latest(runtime, name, entry, latest)
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
        for namespace in self.records.namespaces():
            due_runs: list[tuple[str, str, dict]] = []
            with self.records.update(namespace) as record:
                for name, entry in (record.get("jobs") or {}).items():
                    if not entry.get("schedule"):
                        continue
                    due = due_minute(parse_cron(entry["schedule"]), float(entry.get("last") or now), now)
                    entry["last"] = now
                    if due is None:
                        continue
                    run = f"{name}-{due:%Y%m%d%H%M}"
                    if run in entry.get("runs", []):
                        continue
                    _record_run(entry, run, now)  # recorded first: a run is never submitted unrecorded
                    due_runs.append((name, run, entry["spec"]))
            for name, run, spec in due_runs:
                try:
                    self._submit(namespace, name, run, spec)
                    fired.append(run)
                except ExecutorError:
                    pass  # kept in the entry's errors, shown as the run's failure
        return fired

    # ---- cancel, destroy -----------------------------------------------------------------------

    def cancel(self, runtime: RuntimeRef, job: str) -> list[str]:
        """Cancel the job's runs still going; the runs cancelled."""
        entry = (self.records.read(runtime.namespace).get("jobs") or {}).get(job)
        if entry is None:
            raise ExecutorError(f"runtime {runtime.namespace} has no {self.title} job {job!r}")
        return self._cancel_runs(runtime.namespace, entry)

    def _cancel_runs(self, namespace: str, entry: dict) -> list[str]:
        cancelled = []
        for run in entry.get("runs", []):
            state = self.run_status(run, namespace).state
            if not state.finished and state is not JobState.MISSING:
                self.cancel_run(run, namespace)
                cancelled.append(run)
        return cancelled

    def destroy(self, runtime: RuntimeRef) -> None:
        """Stop the schedules and cancel the runs still going: the record goes first (the beat
        fires nothing more of it), then its runs are cancelled."""
        with self.records.update(runtime.namespace) as record:
            entries = list((record.get("jobs") or {}).values())
            record.clear()
        for entry in entries:
            self._cancel_runs(runtime.namespace, entry)


def _record_run(entry: dict, run: str, now: float) -> None:
    """The run as the job's latest (kept among the last RUNS_KEPT), started now, no error yet."""
    entry["runs"] = [*[r for r in entry.get("runs", []) if r != run], run][-RUNS_KEPT:]
    entry["started"] = {r: t for r, t in {**(entry.get("started") or {}), run: now}.items() if r in entry["runs"]}
    entry["errors"] = [e for e in entry.get("errors", []) if not e.startswith(f"{run}: ")]
    if not entry["errors"]:
        entry.pop("errors")


def _submit_error(entry: dict, run: str) -> str:
    """Why the run's submission failed, or ""."""
    return next((e.split(": ", 1)[1] for e in entry.get("errors", []) if e.startswith(f"{run}: ")), "")
