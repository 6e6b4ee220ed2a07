"""dice.yml jobs with `engine: spark` as a standalone Spark cluster runs them for a runtime (what
SparkExecutor.apply, status, destroy, fire_schedules and cancel_runtime_job do): the record, runs,
schedules, deadlines and cancel are scheduler/deployedjobs.py's, as for Flink; here is what is
Spark's own:

- A job is the `spark` action's params (`resource`, `class`, `args`, `properties`, `sparkConf`...,
  scheduler/spark/app.py), submitted by SparkExecutor.run_job: a jar at a URL over the master's
  REST protocol, a Python program (or `kind: client`) by a sandboxed client-mode driver.
- A job's `resource` may be a path relative to the release's files (ServiceGroup.workdir), shown
  read-only to the driver's sandbox; a URL or an absolute path is used as it is.
- Its driver and executors get the environment every job of the runtime gets
  (scheduler.envvars.engine_job_env); the names whose values are secret go to Spark's
  `spark.redaction.regex`, so its UI and event logs show them redacted.
- A cluster with Spark jobs runs nothing else: a group with services, addons or jobs of another
  engine is refused (those go to the workspace's main cluster).

The record of a runtime is one JSON file under the cluster's state directory.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from scheduler.base import ExecutorError, JobSpec, JobStatus, ServiceGroup
from scheduler.deployedjobs import URL, DeployedJobs, release_path
from scheduler.envvars import engine_job_env
from scheduler.local.cron import parse_cron
from scheduler.spark.app import from_params, job_command


def resolve_resource(resource: str, workdir: str | None, where: str) -> tuple[str, dict[str, str]]:
    """(the resource as the driver reads it, the host paths its sandbox must show). A relative path
    is the release's file: it must stay inside the release's folder."""
    if URL.match(resource) or resource.startswith("/"):
        return resource, {}
    return release_path(resource, workdir, where), {workdir: "ro"}


class DeployedSparkJobs(DeployedJobs):
    """The `engine: spark` jobs of the runtimes deployed onto one Spark cluster; `executor` is that
    cluster's SparkExecutor (its run_job, job_status, cancel_job and drivers)."""

    engine, title = "spark", "Spark"

    def __init__(self, executor: Any):
        self.executor = executor
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", executor.cluster.name)
        super().__init__(executor.root / "spark" / name / "runtimes")

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
            env = engine_job_env(group, name)
            app = dataclasses.replace(app, resource=resource, name=app.name or f"{runtime.app}-{name}",
                                      envs=env.envs, secret_envs=tuple(sorted(env.secret)))
            spec = JobSpec(name=name, namespace=runtime.namespace, command=job_command(app), envs=env.envs,
                           timeout=job.active_deadline, labels={"dice.io/job": name}, tenant=runtime.org,
                           mounts=mounts)
            plans[name] = self.entry(group, name, spec)
        return plans

    def prepare(self, group: ServiceGroup, plans: dict[str, dict]) -> None:
        if group.workdir and any(plan["spec"]["mounts"] for plan in plans.values()):
            # the drivers read the release's files as the tenant's uid, as the local cluster's services do
            drivers = self.executor.drivers
            if drivers.sandboxes.enabled:
                drivers.sandboxes.own(group.workdir, group.runtime.org, recursive=True)

    def submit(self, spec: JobSpec) -> None:
        self.executor.run_job(spec)

    def run_status(self, run: str, namespace: str) -> JobStatus:
        return self.executor.job_status(run, namespace)

    def cancel_run(self, run: str, namespace: str) -> None:
        self.executor.cancel_job(run, namespace)

