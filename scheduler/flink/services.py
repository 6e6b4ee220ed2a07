"""A runtime's `engine: flink` services: long-running streaming jobs kept running by the
deployment like any service.

Each service is one Flink job at a time, named `<service>-<generation>` in the runtime's
namespace. apply() starts it, and when what the service runs changes (its cmd, envs, the
release, its parallelism), stops the running job with a savepoint and starts the new one from
that savepoint, so the job's state carries over an upgrade, a scale (replicas is the
parallelism) and a rollback alike. A job that ended or failed is started again from the last
savepoint it stopped with. Health is the job's state: RUNNING healthy; INITIALIZING/CREATED
progressing; RESTARTING/FAILING degraded with the first line of its exception; ended degraded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scheduler.base import (
    Event,
    ExecutorError,
    GroupStatus,
    Health,
    JobSpec,
    JobState,
    LogLine,
    ReplicaStatus,
    RuntimeRef,
    ServiceGroup,
    ServiceStatus,
)
from scheduler.flink.submit import parse_command

_RESERVED = {"-p", "--parallelism", "-s", "--fromSavepoint", "-n", "--allowNonRestoredState"}
MAX_EVENTS = 50


def service_argv(cmd: str, where: str) -> list[str]:
    """The service's `flink run` arguments; parallelism and savepoints are the deployment's."""
    try:
        argv = shlex.split(cmd)
    except ValueError as exc:
        raise ExecutorError(f"{where}: cmd: {exc}")
    if argv[:2] == ["flink", "run"]:
        argv = argv[2:]
    reserved = sorted(_RESERVED.intersection(argv))
    if reserved:
        raise ExecutorError(f"{where}: cmd sets {reserved[0]}: the deployment sets the parallelism "
                            "(deployments.replicas) and the savepoint a job starts from")
    parse_command(argv, f"{where}: cmd")  # refuse what `flink run` would not take, now
    return argv


class FlinkServices:
    """The `engine: flink` services of the runtimes on one Flink cluster; `executor` is that
    cluster's FlinkExecutor (its jobs(), stop_job() and directory)."""

    def __init__(self, executor: Any):
        self.executor = executor

    # ---- state ---------------------------------------------------------------------------------

    def _path(self, runtime: RuntimeRef) -> Path:
        return self.executor.dir / "runtimes" / f"{runtime.namespace}.json"

    def _load(self, runtime: RuntimeRef) -> dict:
        try:
            return json.loads(self._path(runtime).read_text())
        except (OSError, ValueError):
            return {"services": {}}

    def _save(self, runtime: RuntimeRef, state: dict) -> None:
        path = self._path(runtime)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(path)

    @staticmethod
    def _event(entry: dict, type_: str, reason: str, message: str) -> None:
        events = entry.setdefault("events", [])
        events.append({"timestamp": time.time(), "type": type_, "reason": reason, "message": message})
        del events[:-MAX_EVENTS]

    # ---- apply ---------------------------------------------------------------------------------

    def apply(self, group: ServiceGroup) -> None:
        runtime = group.runtime
        others = sorted(name for name, svc in group.spec.services.items() if svc.engine != "flink")
        if others or group.spec.addons:
            what = f"service {others[0]!r} has no `engine: flink`" if others else "addons are not Flink jobs"
            raise ExecutorError(f"a Flink cluster runs only `engine: flink` services: {what}")
        desired: dict[str, dict] = {}
        for name, svc in group.spec.services.items():
            where = f"service {name!r}"
            argv = service_argv(svc.cmd, where)
            desired[name] = {"argv": argv, "envs": dict(svc.envs), "workdir": group.workdir or "",
                             "release": group.release, "parallelism": max(1, svc.deployments.replicas),
                             "mem": int(svc.resources.mem or 0)}
        state = self._load(runtime)
        if not desired and not state.get("services"):
            return  # nothing of this runtime runs here, nothing is to
        state["runtime"] = runtime.__dict__
        services = state.setdefault("services", {})
        for name, want in desired.items():
            entry = services.setdefault(name, {"generation": 0, "events": []})
            self._converge(runtime, name, entry, want)
            self._save(runtime, state)
        for name in sorted(set(services) - set(desired)):
            self._cancel(runtime, services.pop(name))
            self._save(runtime, state)
        if not services:
            self._path(runtime).unlink(missing_ok=True)

    @staticmethod
    def _key(want: dict) -> str:
        return hashlib.sha256(json.dumps(want, sort_keys=True).encode()).hexdigest()[:16]

    def _converge(self, runtime: RuntimeRef, name: str, entry: dict, want: dict) -> None:
        """Keep the job that runs what is wanted; otherwise stop it with a savepoint and start
        the wanted one from it (or from the last savepoint, when the job is gone)."""
        key = self._key(want)
        jobs = self.executor.jobs()
        current = entry.get("job")
        state = jobs.status(current, runtime.namespace).state if current else JobState.MISSING
        alive = state in (JobState.PENDING, JobState.RUNNING)
        if alive and entry.get("key") == key:
            return
        if alive:
            flink_state = jobs.flink_state(current, runtime.namespace)
            if flink_state in ("RUNNING", "DEPLOYING"):  # stop_job waits for the tasks to run
                entry["savepoint"] = self.executor.stop_job(current, runtime.namespace)
                self._event(entry, "Normal", "Savepoint", f"stopped {current} with savepoint {entry['savepoint']}")
            else:
                # Not running (restarting, initializing): no consistent state to take; the last
                # savepoint is the best there is.
                jobs.cancel(current, runtime.namespace)
                self._event(entry, "Warning", "Cancelled", f"cancelled {current} ({flink_state or state.value}): "
                                                          "no savepoint, starting from the last one")
        # The next generation whose job name was never used here: a runtime destroyed and deployed
        # again under the same name starts counting afresh, while its old jobs' records (and the
        # session cluster's memory of their ids) are still there.
        generation = int(entry.get("generation") or 0) + 1
        while jobs.taken(f"{name}-{generation}", runtime.namespace):
            generation += 1
        entry["generation"] = generation
        job_name = f"{name}-{generation}"
        command = ["flink", "run", "-p", str(want["parallelism"])]
        if entry.get("savepoint"):
            command += ["-s", entry["savepoint"], "-n"]
        command += want["argv"]
        entry.update(job=job_name, key=key, want=want, started=time.time())
        spec = JobSpec(name=job_name, namespace=runtime.namespace, command=command, envs=want["envs"],
                       workdir=want["workdir"] or None, mem=want["mem"] or 1024, tenant=runtime.org,
                       labels={**runtime.labels(), "dice.io/service": name})
        try:
            jobs.run(spec)
        except ExecutorError as exc:
            self._event(entry, "Warning", "SubmitFailed", str(exc))
            entry["error"] = str(exc)
            raise
        entry.pop("error", None)
        origin = f" from savepoint {entry['savepoint']}" if entry.get("savepoint") else ""
        self._event(entry, "Normal", "Started", f"started {job_name} with parallelism {want['parallelism']}{origin}")

    def _cancel(self, runtime: RuntimeRef, entry: dict) -> None:
        if entry.get("job"):
            self.executor.jobs().cancel(entry["job"], runtime.namespace)

    def _entry(self, runtime: RuntimeRef, service: str) -> tuple[dict, dict]:
        state = self._load(runtime)
        entry = state.get("services", {}).get(service)
        if entry is None:
            raise ExecutorError(f"runtime {runtime.namespace} has no Flink service {service!r}")
        return state, entry

    def scale(self, runtime: RuntimeRef, service: str, replicas: int) -> None:
        """A new parallelism: stop with a savepoint, start again from it."""
        if replicas < 1:
            raise ExecutorError(f"service {service!r}: a Flink job's parallelism is at least 1, not {replicas}")
        state, entry = self._entry(runtime, service)
        self._converge(runtime, service, entry, {**entry["want"], "parallelism": replicas})
        self._save(runtime, state)

    def restart(self, runtime: RuntimeRef, service: str) -> None:
        state, entry = self._entry(runtime, service)
        entry["key"] = ""  # what runs is what is wanted, but start it again (from a savepoint)
        self._converge(runtime, service, entry, entry["want"])
        self._save(runtime, state)

    def destroy(self, runtime: RuntimeRef) -> None:
        state = self._load(runtime)
        for entry in state.get("services", {}).values():
            self._cancel(runtime, entry)
        self._path(runtime).unlink(missing_ok=True)

    # ---- status ---------------------------------------------------------------------------------

    def service_status(self, runtime: RuntimeRef, name: str, entry: dict) -> ServiceStatus:
        jobs = self.executor.jobs()
        desired = int((entry.get("want") or {}).get("parallelism") or 1)
        job = entry.get("job") or ""
        if entry.get("error") and not job:
            return ServiceStatus(name, desired, health=Health.DEGRADED, reason=entry["error"])
        status = jobs.status(job, runtime.namespace)
        flink_state = jobs.flink_state(job, runtime.namespace) if status.state is not JobState.MISSING else ""
        if flink_state == "RUNNING":
            health, reason, ready = Health.HEALTHY, "", desired
        elif flink_state == "DEPLOYING" or status.state is JobState.PENDING:
            health, reason, ready = Health.PROGRESSING, f"job {job} is {flink_state or 'being submitted'}", 0
        elif status.state is JobState.MISSING:
            health, reason, ready = Health.MISSING, f"job {job} is not on the Flink cluster", 0
        else:
            # RESTARTING/FAILING (still running) carry the exception; FAILED/ended say so
            health, ready = Health.DEGRADED, 0
            reason = f"job {job} is {status.message or flink_state or status.state.value}"
        replica = ReplicaStatus(name=job, ready=ready > 0, state=flink_state or status.state.value)
        return ServiceStatus(name, desired, updated=desired, ready=ready, available=ready, health=health,
                             reason=reason, replicas=(replica,))

    def status(self, runtime: RuntimeRef) -> GroupStatus:
        state = self._load(runtime)
        services = {name: self.service_status(runtime, name, entry)
                    for name, entry in sorted(state.get("services", {}).items())}
        if not services:
            return GroupStatus(runtime, Health.MISSING, "no Flink services")
        order = [Health.UNKNOWN, Health.MISSING, Health.DEGRADED, Health.PROGRESSING, Health.HEALTHY]
        worst = min(services.values(), key=lambda s: order.index(s.health))
        reason = f"{worst.name}: {worst.reason}" if worst.reason else ""
        return GroupStatus(runtime, worst.health, reason, services=services)

    def logs(self, runtime: RuntimeRef, service: str, *, follow: bool = False,
             tail: int | None = None) -> Iterator[LogLine]:
        _, entry = self._entry(runtime, service)
        lines = self.executor.jobs().logs(entry.get("job") or "", runtime.namespace, follow=follow)
        if tail is None or follow:
            return lines
        return iter(list(lines)[-tail:] if tail else [])

    def events(self, runtime: RuntimeRef, service: str | None = None) -> list[Event]:
        state = self._load(runtime)
        found = []
        for name, entry in state.get("services", {}).items():
            if service and name != service:
                continue
            found += [Event(e["timestamp"], e["type"], e["reason"], e["message"], object=name)
                      for e in entry.get("events", [])]
        return sorted(found, key=lambda e: e.timestamp)
