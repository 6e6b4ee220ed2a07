"""dice.yml jobs with `engine: spark` as a Spark cluster runs them for a runtime (what
SparkExecutor.apply, status, destroy and fire_schedules do).

- A job without `schedule` runs once per release deployed: its run is named after the job and a
  hash of the release and the application (`etl-3f2a9c1d`), so applying the same release again
  never submits it twice, and a new release (or a changed job) runs it again, as a Kubernetes Job
  of a changed template is a new Job.
- A job with `schedule` (cron, the same 5 fields as a CronJob) is recorded; fire_schedules(),
  called by the console's beat every DICE_ENGINE_SCHEDULE_INTERVAL seconds, submits the run of
  each minute that came due (`etl-202612070200`: a run is named after its minute, so firing twice
  never submits it twice). A schedule first fires at the first due minute after it was deployed.
- status(runtime) reports each job's latest run in GroupStatus.jobs; the runtime is healthy when
  every once-per-release run has succeeded, progressing while one is pending or running, and
  degraded when one failed or was cancelled.
- A job's `resource` may be a path relative to the release's files (ServiceGroup.workdir), shown
  read-only to the driver's sandbox; a URL or an absolute path is used as it is.

The record of a runtime is one JSON file under the cluster's state directory.
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
from scheduler.local.cron import due_minute, parse_cron
from scheduler.local.state import read_json, write_json
from scheduler.spark.app import SparkApp, from_params, job_command
from scheduler.specfill import has_secret, secret_env

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _short_hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]


def resolve_resource(resource: str, workdir: str | None, where: str) -> tuple[str, dict[str, str]]:
    """(the resource as the driver reads it, the host paths its sandbox must show). A relative path
    is the release's file: it must stay inside the release's folder."""
    if _URL.match(resource) or resource.startswith("/"):
        return resource, {}
    if not workdir:
        raise ExecutorError(f"{where}.resource: {resource!r} is a path in the release's files, and this release "
                            "has none: upload the files with the release (dice release create --spec), or give "
                            "a URL or an absolute path")
    path = posixpath.normpath(resource)
    if path == ".." or path.startswith("../"):
        raise ExecutorError(f"{where}.resource: {resource!r} leaves the release's files")
    return os.path.join(workdir, path), {workdir: "ro"}


class DeployedJobs:
    """The `engine: spark` jobs of the runtimes deployed onto one Spark cluster."""

    def __init__(self, executor: Any):  # the SparkExecutor (its run_job, job_status, cancel_job, drivers)
        self.executor = executor
        self.folder = executor.root / "spark" / re.sub(r"[^A-Za-z0-9_.-]+", "-", executor.cluster.name) / "runtimes"

    def _path(self, runtime: RuntimeRef) -> Path:
        return self.folder / f"{runtime.namespace}.json"

    # ---- apply -------------------------------------------------------------------------------

    def plan(self, group: ServiceGroup) -> dict[str, dict]:
        """Every job's app and run spec; refuses the whole group (naming the field) before anything runs."""
        others = sorted(name for name, job in group.spec.jobs.items() if job.engine != "spark")
        if group.spec.services or group.spec.addons or others:
            what = (f"job {others[0]!r} has no `engine: spark`" if others
                    else "services and addons belong to the workspace's main cluster")
            raise ExecutorError(f"a Spark cluster runs only dice.yml jobs with `engine: spark`: {what}")
        runtime = group.runtime
        plans: dict[str, dict] = {}
        for name, job in sorted(group.spec.jobs.items()):
            where = f"jobs.{name}"
            if job.schedule:
                parse_cron(job.schedule)
            app = from_params(job.engine_params(), where)
            resource, mounts = resolve_resource(app.resource, group.workdir, where)
            envs, secret = job_envs(group, name, self.executor.cluster.name)
            app = dataclasses.replace(app, resource=resource, name=app.name or f"{runtime.app}-{name}",
                                      envs=envs, secret_envs=tuple(sorted(secret)))
            spec = JobSpec(name=name, namespace=runtime.namespace, command=job_command(app), envs=envs,
                           timeout=job.active_deadline, labels={"dice.io/job": name}, tenant=runtime.org,
                           mounts=mounts)
            digest = _short_hash({"release": group.release, "spec": dataclasses.asdict(spec)})
            plans[name] = {"schedule": job.schedule or "", "spec": dataclasses.asdict(spec),
                           "run": "" if job.schedule else f"{name}-{digest}", "app": app.as_dict()}
        return plans

    def apply(self, group: ServiceGroup) -> None:
        plans = self.plan(group)
        path = self._path(group.runtime)
        old = read_json(path) or {}
        if not plans and not old:
            return  # nothing of this runtime runs here, nothing is to
        if not plans:
            self.destroy(group.runtime)
            return
        now = time.time()
        jobs = {}
        for name, plan in plans.items():
            before = (old.get("jobs") or {}).get(name) or {}
            entry = {**plan, "last": before.get("last", now), "runs": before.get("runs", [])}
            if plan["run"]:
                entry["runs"] = [*[r for r in entry["runs"] if r != plan["run"]], plan["run"]][-10:]
            jobs[name] = entry
        if group.workdir and any(plan["spec"]["mounts"] for plan in plans.values()):
            # the drivers read the release's files as the tenant's uid, as the local cluster's services do
            drivers = self.executor.drivers
            if drivers.sandboxes.enabled:
                drivers.sandboxes.own(group.workdir, group.runtime.org, recursive=True)
        # 0600: the jobs' envs hold the addons' passwords and secret variables, as a local runtime's state does
        write_json(path, {"runtime": dataclasses.asdict(group.runtime), "release": group.release, "jobs": jobs},
                   mode=0o600)
        for entry in jobs.values():
            if entry["run"]:
                self.executor.run_job(self._run_spec(entry, entry["run"]))

    @staticmethod
    def _run_spec(entry: dict, run: str) -> JobSpec:
        fields = dict(entry["spec"])
        return JobSpec(**{**fields, "name": run})

    # ---- status ------------------------------------------------------------------------------

    def has_jobs(self, runtime: RuntimeRef) -> bool:
        return bool((read_json(self._path(runtime)) or {}).get("jobs"))

    def status(self, runtime: RuntimeRef) -> GroupStatus:
        record = read_json(self._path(runtime)) or {}
        if not record.get("jobs"):
            return GroupStatus(runtime, Health.MISSING, "no Spark job of this runtime runs here")
        jobs: dict[str, JobStatus] = {}
        health, reasons = Health.HEALTHY, []
        for name, entry in sorted(record["jobs"].items()):
            latest = entry["run"] or (entry["runs"][-1] if entry["runs"] else "")
            if not latest:
                jobs[name] = JobStatus(name=name, state=JobState.PENDING,
                                       message=f"scheduled ({entry['schedule']}): no run yet")
                continue
            found = self.executor.job_status(latest, runtime.namespace)
            jobs[name] = dataclasses.replace(found, name=latest)
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
        names of the runs submitted."""
        now = time.time() if now is None else now
        fired: list[str] = []
        for path in sorted(self.folder.glob("*.json")):
            record = read_json(path)
            if not record or not record.get("jobs"):
                continue
            changed = False
            for name, entry in record["jobs"].items():
                if not entry.get("schedule"):
                    continue
                due = due_minute(parse_cron(entry["schedule"]), float(entry.get("last") or now), now)
                entry["last"] = now
                changed = True
                if due is None:
                    continue
                run = f"{name}-{due:%Y%m%d%H%M}"
                entry["runs"] = [*[r for r in entry.get("runs", []) if r != run], run][-10:]
                write_json(path, record, mode=0o600)  # recorded first: a run is never submitted unrecorded
                try:
                    self.executor.run_job(self._run_spec(entry, run))
                    fired.append(run)
                except ExecutorError as exc:
                    entry.setdefault("errors", []).append(f"{run}: {exc}")
                    entry["errors"] = entry["errors"][-5:]
            if changed:
                write_json(path, record, mode=0o600)
        return fired

    # ---- destroy -----------------------------------------------------------------------------

    def destroy(self, runtime: RuntimeRef) -> None:
        """Stop the schedules and cancel the runs still going; the record goes."""
        path = self._path(runtime)
        record = read_json(path) or {}
        for entry in (record.get("jobs") or {}).values():
            for run in entry.get("runs", []):
                state = self.executor.job_status(run, runtime.namespace).state
                if not state.finished and state is not JobState.MISSING:
                    self.executor.cancel_job(run, runtime.namespace)
        path.unlink(missing_ok=True)


def job_envs(group: ServiceGroup, name: str, cluster: str) -> tuple[dict[str, str], set[str]]:
    """The environment of a dice.yml Spark job's driver and executors, with the precedence every
    service and job of the runtime has (scheduler/local/plan.py): the runtime's discovery and addon
    variables, then the file's envs (top-level, then the job's own, `((KEY))` filled from the
    project's configs), then the console's variables of the application in the workspace, then
    the platform's DICE_* (the console refuses variables of those names). Also the names whose
    values are secret: the addons' passwords, values filled from configs, secret console variables."""
    runtime = group.runtime
    own = group.spec.service_envs(name)
    filled = {k: secret_env(v, group.secret_configs, f"jobs.{name}: env {k}") if has_secret(v) else v
              for k, v in own.items()}
    console = group.console_variables()
    envs = {**group.runtime_envs, **filled, **console,
            "DICE_WORKSPACE": runtime.workspace, "DICE_RUNTIME_NAME": runtime.name,
            "DICE_APPLICATION_NAME": runtime.app, "DICE_PROJECT_NAME": runtime.project,
            "DICE_ORG_NAME": runtime.org, "DICE_SERVICE_NAME": name,
            "DICE_CLUSTER_NAME": cluster}  # the Spark cluster that runs it
    secret = {k for k in group.runtime_secret_envs if k in envs and k not in own and k not in console}
    secret |= {k for k, v in own.items() if has_secret(v) and k not in console}
    secret |= {k for k in group.secret_variables if k in envs}
    return envs, secret


def requested(app: SparkApp) -> tuple[float, int]:
    """What an application asks of a cluster: (cores, MiB) of its driver and executors together."""
    cores = app.driver_cores + app.executor_cores * app.executor_instances
    return cores, app.driver_mem + app.executor_mem * app.executor_instances
