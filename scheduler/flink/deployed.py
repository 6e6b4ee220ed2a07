"""dice.yml jobs with `engine: flink` as a Flink session cluster runs them for a runtime: bounded
(batch) jobs, each run followed to its end (what FlinkExecutor.apply, status, destroy,
fire_schedules and cancel_runtime_job do for jobs; services.py keeps the streaming services). The
record, runs, schedules, deadlines and cancel are scheduler/deployedjobs.py's, as for Spark; here
is what is Flink's own:

- A job is given as the `flink` action's params: `resource` (a .jar or a PyFlink .py file of the
  release: a path relative to its files), `class`, `args`, `properties` (Flink configuration,
  `-D key=value`) and `flinkConf` {parallelism; kind, jobManagerResource, taskManagerResource
  are a FlinkDeployment's, on Kubernetes}. It runs through `flink run` in the tenant's sandbox on
  the console's machine (a jar too: its main() reads the job's environment, the same as every
  job of the runtime: scheduler.envvars.engine_job_env), and the run is the Flink job it submits.
- status gives each run's state with Flink's state and the root exception's first line when it
  failed (FlinkJobs.status).
"""

from __future__ import annotations

import os
import re
from typing import Any

from scheduler.base import ExecutorError, JobSpec, JobStatus, ServiceGroup
from scheduler.deployedjobs import URL, DeployedJobs, release_path
from scheduler.envvars import engine_job_env
from scheduler.flink.action import action_params
from scheduler.local.cron import parse_cron

_CONF_KEY = re.compile(r"[A-Za-z0-9_.-]+")


def release_file(resource: str, workdir: str | None, where: str) -> str:
    """The job's .jar or .py as a file of the release (a path relative to its files, never leaving
    them): a session cluster's client reads it on this machine."""
    if URL.match(resource) or resource.startswith("/"):
        raise ExecutorError(f"{where}.resource: {resource!r}: a Flink session cluster runs a file of the "
                            "release (a path relative to its files, e.g. jobs/wordcount.py); URLs and paths "
                            "of the image are for the Flink operator on Kubernetes")
    return release_path(resource, workdir, where)


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


class DeployedFlinkJobs(DeployedJobs):
    """The `engine: flink` jobs of the runtimes deployed onto one Flink cluster; `executor` is that
    cluster's FlinkExecutor (its jobs(), local() and directory)."""

    engine, title = "flink", "Flink"

    def __init__(self, executor: Any):
        self.executor = executor
        super().__init__(executor.dir / "deployed-jobs")

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
                           envs=engine_job_env(group, name).envs, workdir=group.workdir,
                           mem=int(job.resources.mem or 0) or 1024, timeout=job.active_deadline,
                           labels={**runtime.labels(), "dice.io/job": name}, tenant=runtime.org,
                           mounts={group.workdir: "ro"} if group.workdir else {})
            plans[name] = self.entry(group, name, spec)
        return plans

    def prepare(self, group: ServiceGroup, plans: dict[str, dict]) -> None:
        if group.workdir:
            # the client reads the release's files as the tenant's uid, as the local cluster's services do
            local = self.executor.local()
            if local.sandboxes.enabled:
                local.sandboxes.own(group.workdir, group.runtime.org, recursive=True)

    def submit(self, spec: JobSpec) -> None:
        self.executor.jobs().run(spec, client=True)

    def run_status(self, run: str, namespace: str) -> JobStatus:
        return self.executor.jobs().status(run, namespace)

    def cancel_run(self, run: str, namespace: str) -> None:
        self.executor.jobs().cancel(run, namespace)
