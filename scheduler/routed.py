"""A runtime whose services run on more than one cluster: the services with `engine: flink` on
the workspace's Flink data cluster, the jobs with `engine: spark` on its Spark data cluster,
everything else on the runtime's own cluster.

EngineRouted is an Executor made of the runtime's executor and one executor per engine: apply()
gives each its part of the group (each prunes what is no longer its own), status() merges the
parts (the runtime is as healthy as its least healthy part; the engines' jobs are in `jobs`), a
service's scale, restart, logs and events go to the executor that runs it; everything else (run_job,
steps, the check) is the runtime's own executor's. An engine's job whose workspace has no data
cluster of that engine stays with the runtime's own cluster, which runs it if it can (Kubernetes
with the Spark operator: a SparkApplication) and otherwise refuses the group naming the job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from scheduler.base import (
    Event,
    Executor,
    ExecutorError,
    GroupStatus,
    Health,
    JobState,
    JobStatus,
    LogLine,
    RuntimeRef,
    ServiceGroup,
    StatusChanges,
    status_changes,
)

ORDER = [Health.UNKNOWN, Health.DEGRADED, Health.MISSING, Health.PROGRESSING, Health.HEALTHY]


def engine_services(group: ServiceGroup) -> dict[str, list[str]]:
    """engine -> the names of the services that run on it."""
    found: dict[str, list[str]] = {}
    for name, svc in group.spec.services.items():
        if getattr(svc, "engine", ""):
            found.setdefault(svc.engine, []).append(name)
    return found


def engine_jobs(group: ServiceGroup) -> dict[str, list[str]]:
    """engine -> the names of the dice.yml jobs that run on it (`engine: spark`, `engine: flink`)."""
    found: dict[str, list[str]] = {}
    for name, job in group.spec.jobs.items():
        if getattr(job, "engine", None):
            found.setdefault(job.engine, []).append(name)
    return found


def require_engines(group: ServiceGroup, engines: dict[str, Any], native: tuple[str, ...] = ()) -> None:
    """Refuse a group with a service on an engine the workspace has no cluster of (and that the
    runtime's own cluster does not run itself: `native`, Capabilities.engines)."""
    for engine, names in sorted(engine_services(group).items()):
        if engine not in engines and engine not in native:
            raise ExecutorError(f"service {names[0]!r} has `engine: {engine}` but the workspace has no {engine} "
                                f"data cluster: bind one to the workspace")


def require_engine_jobs(group: ServiceGroup, engines: dict[str, Any], native: tuple[str, ...] = ()) -> None:
    """Refuse a group with an `engine: flink` job that nothing would run: the workspace has no
    Flink data cluster and the runtime's cluster does not run Flink itself (Kubernetes with the
    Flink operator). Spark jobs the runtime's cluster refuses itself (a SparkApplication needs
    its operator's CRDs, which only the cluster knows)."""
    for name in sorted(engine_jobs(group).get("flink", [])):
        if "flink" not in engines and "flink" not in native:
            raise ExecutorError(missing_flink(name))


def missing_flink(job: str) -> str:
    return (f"job {job!r} has `engine: flink` but the workspace has no Flink data cluster and its cluster "
            "does not run Flink jobs: bind a Flink data cluster to the workspace (the managed flink-local, "
            "or one registered by its REST URL), or deploy to a Kubernetes cluster with the Flink operator")


class EngineRouted:
    """The runtime's executor plus its engines' (e.g. {"flink": FlinkExecutor})."""

    def __init__(self, main: Executor, engines: dict[str, Any]):
        self.main = main
        self.engines = engines

    def __getattr__(self, name: str) -> Any:  # jobs, steps, the check: the runtime's own cluster
        return getattr(self.main, name)

    def apply(self, group: ServiceGroup) -> None:
        native = tuple(getattr(self.main.capabilities, "engines", ()))
        require_engines(group, self.engines, native)
        require_engine_jobs(group, self.engines, native)
        mine, jobs = engine_services(group), engine_jobs(group)
        self.main.apply(self._main_part(group))
        # What the runtime's own cluster gives its jobs (addon variables, discovery) and which of
        # those are secret: the engines' parts have neither addons nor services, and their jobs
        # need to reach them. A cluster that cannot say (Kubernetes: its addresses are in-cluster)
        # gives nothing, and the engine computes the rest (scheduler.envvars.engine_job_env).
        routed = sorted(n for engine, names in jobs.items() if engine in self.engines for n in names)
        envs_by_job = self.main.job_envs(group) if routed and hasattr(self.main, "job_envs") else {}
        for engine, executor in self.engines.items():
            names, job_names = set(mine.get(engine, [])), set(jobs.get(engine, []))
            part = group.spec.model_copy(update={
                "services": {n: s for n, s in group.spec.services.items() if n in names}, "addons": {},
                "jobs": {n: j for n, j in group.spec.jobs.items() if n in job_names}})
            given = {n: env for n, env in envs_by_job.items() if n in job_names}
            executor.apply(dataclasses.replace(group, spec=part, job_envs=given))  # none left: it prunes what it ran

    def _main_part(self, group: ServiceGroup) -> ServiceGroup:
        """The group without what the engines' data clusters run (their services and jobs); an
        engine's services stay with the runtime's own cluster when the workspace has no data cluster
        of that engine and the cluster runs it itself (Kubernetes with the Flink operator)."""
        elsewhere = {name for engine, names in engine_services(group).items() if engine in self.engines
                     for name in names}
        routed = {name for engine, names in engine_jobs(group).items() if engine in self.engines for name in names}
        spec = group.spec.model_copy(update={
            "services": {n: s for n, s in group.spec.services.items() if n not in elsewhere},
            "jobs": {n: j for n, j in group.spec.jobs.items() if n not in routed}})
        return dataclasses.replace(group, spec=spec)

    def drift(self, group: ServiceGroup):
        """The runtime's own cluster's drift, of its own part of the group."""
        return self.main.drift(self._main_part(group))

    def _owner(self, runtime: RuntimeRef, service: str):
        for executor in self.engines.values():
            if executor.has_service(runtime, service):
                return executor
        return self.main

    def status(self, runtime: RuntimeRef) -> GroupStatus:
        status = self.main.status(runtime)
        services, healths, reasons = dict(status.services), [status.health], [status.reason]
        jobs = dict(status.jobs)
        for executor in self.engines.values():
            part = executor.status(runtime)
            if not part.services and not part.jobs:
                continue
            services.update(part.services)
            jobs.update(part.jobs)
            healths.append(part.health)
            reasons.append(part.reason)
        if len(healths) == 1:
            return status
        if status.health is Health.MISSING and not status.services and not status.addons:
            healths, reasons = healths[1:], reasons[1:]  # only engine work: the runtime's part is empty
        worst = min(range(len(healths)), key=lambda i: ORDER.index(healths[i]))
        return GroupStatus(runtime, healths[worst], reasons[worst], services=services, addons=status.addons,
                           jobs=jobs)

    def watch_status(self, runtime: RuntimeRef) -> StatusChanges:
        return status_changes(self.main, runtime, 1.0)

    def scale(self, runtime: RuntimeRef, service: str, replicas: int) -> None:
        self._owner(runtime, service).scale(runtime, service, replicas)

    def restart(self, runtime: RuntimeRef, service: str) -> None:
        self._owner(runtime, service).restart(runtime, service)

    def destroy(self, runtime: RuntimeRef) -> None:
        for executor in self.engines.values():
            executor.destroy(runtime)
        self.main.destroy(runtime)

    # ---- the runtime's jobs that run on an engine (their latest run) ------------------------------

    def _job_owner(self, runtime: RuntimeRef, job: str) -> tuple[Any, JobStatus]:
        """(the executor that runs the runtime's `engine:` job `job`, its latest run's status)."""
        for executor in [*self.engines.values(), self.main]:
            found = executor.status(runtime).jobs.get(job)
            if found is not None:
                return executor, found
        raise ExecutorError(f"runtime {runtime.namespace} has no data engine's job {job!r} (a job with `engine:` "
                            "that was deployed)")

    def runtime_job_log(self, runtime: RuntimeRef, job: str) -> tuple[JobStatus, list[LogLine]]:
        """The latest run of the runtime's `engine:` job and its log (the client's output, each
        state the job was seen in, its root exception when it failed)."""
        executor, found = self._job_owner(runtime, job)
        if found.state is JobState.PENDING and found.name == job:  # scheduled, no run yet
            return found, []
        return found, list(executor.job_logs(found.name, runtime.namespace))

    def cancel_runtime_job(self, runtime: RuntimeRef, job: str) -> list[str]:
        """Cancel the runs still going of the runtime's `engine:` job; the runs cancelled."""
        executor, found = self._job_owner(runtime, job)
        if hasattr(executor, "cancel_runtime_job"):
            return executor.cancel_runtime_job(runtime, job)
        if found.state.finished or found.state is JobState.MISSING or found.name == job:
            return []
        executor.cancel_job(found.name, runtime.namespace)
        return [found.name]

    def logs(self, runtime: RuntimeRef, service: str, *, follow: bool = False,
             tail: int | None = None) -> Iterator[LogLine]:
        return self._owner(runtime, service).logs(runtime, service, follow=follow, tail=tail)

    def events(self, runtime: RuntimeRef, service: str | None = None) -> list[Event]:
        if service is not None:
            return self._owner(runtime, service).events(runtime, service)
        found = list(self.main.events(runtime))
        for executor in self.engines.values():
            found += executor.events(runtime)
        return sorted(found, key=lambda e: e.timestamp)
