"""The Executor of a Flink cluster: a session cluster reached by its REST URL, or the managed
local one (session.py). It runs Flink jobs (run_job with `flink run` arguments), stops them with
savepoints, and keeps `engine: flink` services of a runtime running (services.py); what a Flink
cluster cannot do (pipeline steps, ordinary services, node labels) is refused with the reason."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scheduler.base import (
    Capabilities,
    ClusterRef,
    Event,
    ExecutorError,
    ExecutorUnavailable,
    GroupStatus,
    JobSpec,
    JobStatus,
    LogLine,
    RuntimeRef,
    ServiceGroup,
    StepJob,
    StepResult,
    base_report,
    dns_label,
    no_batch,
)
from scheduler.engines import engine_venv, missing_hint
from scheduler.flink.jobs import FlinkJobs
from scheduler.flink.rest import FlinkRest
from scheduler.flink.services import FlinkServices
from scheduler.flink.session import LocalSession, python_home
from scheduler.local import LocalExecutor
from scheduler.local.state import default_root

# Flink jobs and savepoints; no images, namespaces, steps or ordinary services.
CAPABILITIES = Capabilities(runtimes=False, steps=False, savepoints=True, inspection=True, data_engine="flink")
_NOT_HERE = "a Flink cluster runs Flink jobs and `engine: flink` services only"


def cluster_dir(cluster: ClusterRef) -> Path:
    """Where the kind keeps what the REST API does not (job records, runtimes, the managed session)."""
    root = cluster.config.get("root") or (default_root().parent / "flink")
    return Path(root).resolve() / dns_label(cluster.name or "flink")


class FlinkInspector:
    """The check and snapshot of a Flink cluster: its REST API's overview, config and task managers."""

    capabilities = CAPABILITIES

    def __init__(self, cluster: ClusterRef, session: LocalSession | None = None):
        self.cluster = cluster
        self.session = session

    def rest(self) -> FlinkRest:
        if self.session is not None:
            return FlinkRest(self.session.ensure())
        url = self.cluster.config.get("endpoint") or self.cluster.config.get("rest_url") or ""
        if not url:
            raise ExecutorError(f"Flink cluster {self.cluster.name!r} has no REST URL (config rest_url) "
                                "and is not the managed local one (config managed: true)")
        return FlinkRest(url)

    def check(self) -> dict[str, Any]:
        try:
            rest = self.rest()
            overview, config, managers = rest.overview(), rest.config(), rest.taskmanagers()
        except ExecutorError as exc:
            return base_report(False, error=str(exc), capabilities=CAPABILITIES)
        report = base_report(True, version=str(config.get("flink-version") or overview.get("flink-version") or ""),
                             capabilities=CAPABILITIES)
        report["flink"] = {
            "rest_url": rest.url,
            "managed": self.session is not None,
            "taskmanagers": int(overview.get("taskmanagers") or 0),
            "slots_total": int(overview.get("slots-total") or 0),
            "slots_available": int(overview.get("slots-available") or 0),
            "jobs_running": int(overview.get("jobs-running") or 0),
            "taskmanager_ids": [tm.get("id") for tm in managers],
            "python_jobs": engine_venv("flink") is not None,
        }
        if self.session is not None:
            report["flink"]["processes"] = self.session.processes()
        if engine_venv("flink") is None:
            report["flink"]["python_jobs_hint"] = missing_hint("flink")
        return report

    def snapshot(self) -> dict[str, Any]:
        """Each TaskManager as a node (slots and memory), no namespaces or workloads."""
        nodes = []
        for tm in self.rest().taskmanagers():
            hardware = tm.get("hardware") or {}
            resources = {"cpu": int(hardware.get("cpuCores") or 0) * 1000,
                         "memory": int(hardware.get("physicalMemory") or 0)}
            nodes.append({
                "name": str(tm.get("id")), "capacity": resources, "allocatable": resources,
                "requests": {"cpu": 0, "memory": 0}, "limits": {"cpu": 0, "memory": 0},
                "labels": {"flink/slots": str(tm.get("slotsNumber", 0)),
                           "flink/free-slots": str(tm.get("freeSlots", 0))},
                "conditions": [{"type": "Ready", "status": "True", "reason": "Registered", "message": ""}],
                "ready": True, "unschedulable": False, "pod_count": 0,
                "internal_ip": str(tm.get("path", "")).split("@")[-1].split(":")[0], "kubelet_version": "",
            })
        return {"nodes": nodes, "namespaces": [], "pods": [], "workloads": []}

    def set_node_labels(self, node: str, labels: dict[str, str | None]) -> dict[str, str]:
        raise ExecutorError("a Flink cluster has no node labels (its TaskManagers are not nodes the console places work on)")

    def inspection_data(self) -> dict[str, Any]:
        rest = self.rest()
        return {"nodes": self.snapshot()["nodes"], "pods": [], "certificates": [], "pvcs": [], "quotas": [],
                "namespaces": {}, "flink_jobs": rest.jobs()}


class FlinkExecutor(FlinkInspector):
    """The Executor of one Flink cluster."""

    kind = "flink"

    def __init__(self, cluster: ClusterRef):
        self.dir = cluster_dir(cluster)
        self.dir.mkdir(parents=True, exist_ok=True)
        session = LocalSession(cluster, self.dir / "session") if cluster.config.get("managed") else None
        super().__init__(cluster, session)
        self._local: LocalExecutor | None = session.local if session is not None else None
        self._lock = threading.Lock()
        self.services = FlinkServices(self)

    # ---- plumbing -----------------------------------------------------------------------------

    def local(self) -> LocalExecutor:
        """Runs the PyFlink clients (sandboxed, as the job's tenant)."""
        with self._lock:
            if self._local is None:
                self._local = LocalExecutor(self.dir / "clients", cluster_name=f"{self.cluster.name}-flink",
                                            job_priority="normal")
            return self._local

    def savepoint_dir(self) -> str:
        if self.session is not None:
            return f"file://{self.session.dir / 'run' / 'savepoints'}"
        configured = self.cluster.config.get("savepoint_dir") or ""
        if configured:
            return str(configured)
        found = self.rest().jobmanager_config().get("state.savepoints.dir") or ""
        if not found:
            raise ExecutorError(f"Flink cluster {self.cluster.name!r} has no savepoint directory: set the "
                                "cluster's savepoint_dir or the cluster's state.savepoints.dir")
        return found

    def jobs(self) -> FlinkJobs:
        venv = engine_venv("flink")
        mounts: dict[str, str] = {}
        env: dict[str, str] = {}
        if venv is not None:
            mounts[str(venv)] = "ro"
            home = python_home()
            if not home.startswith(("/usr/", "/opt/")):
                mounts[home] = "ro"
            target = os.path.dirname(os.path.dirname(os.path.realpath(venv / "bin" / "python")))
            if not target.startswith(("/usr/", "/opt/")):
                mounts.setdefault(target, "ro")
            env = {"PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin"}
        return FlinkJobs(self.cluster.name or "flink", self.rest(), self.dir, self.local(), venv or Path("/nonexistent"),
                         mounts, env)

    # ---- jobs -------------------------------------------------------------------------------------

    def run_job(self, job: JobSpec) -> JobStatus:
        if ("-py" in job.command or "--python" in job.command) and engine_venv("flink") is None:
            raise ExecutorUnavailable(f"job {job.name!r} is a Python job: {missing_hint('flink')}")
        return self.jobs().run(job)

    def job_status(self, name: str, namespace: str = "") -> JobStatus:
        return self.jobs().status(name, namespace)

    def cancel_job(self, name: str, namespace: str = "") -> None:
        self.jobs().cancel(name, namespace)

    def stop_job(self, name: str, namespace: str = "", savepoint_dir: str = "") -> str:
        """Stop a streaming job with a savepoint (Capabilities.savepoints); its path comes back,
        to start the next job from (`flink run -s PATH ...`)."""
        return self.jobs().stop_with_savepoint(name, namespace, savepoint_dir or self.savepoint_dir())

    def job_logs(self, name: str, namespace: str = "", *, follow: bool = False) -> Iterator[LogLine]:
        return self.jobs().logs(name, namespace, follow=follow)

    def job_log_version(self, name: str, namespace: str = "") -> object | None:
        return None

    def job_batch(self) -> contextlib.AbstractContextManager[None]:
        return no_batch()

    def start_step(self, step: StepJob) -> JobStatus:
        raise ExecutorError(f"{_NOT_HERE}: pipeline steps run on the workspace's main cluster "
                            "(the `flink` action submits its job here)")

    def step_result(self, name: str, namespace: str, status: JobStatus) -> StepResult | None:
        return None

    # ---- a runtime's `engine: flink` services ----------------------------------------------------

    def apply(self, group: ServiceGroup) -> None:
        self.services.apply(group)

    def has_service(self, runtime: RuntimeRef, service: str) -> bool:
        """Whether the runtime's `service` is one of this cluster's (EngineRouted asks)."""
        return service in self.services._load(runtime).get("services", {})

    def status(self, runtime: RuntimeRef) -> GroupStatus:
        return self.services.status(runtime)

    def scale(self, runtime: RuntimeRef, service: str, replicas: int) -> None:
        self.services.scale(runtime, service, replicas)

    def restart(self, runtime: RuntimeRef, service: str) -> None:
        self.services.restart(runtime, service)

    def destroy(self, runtime: RuntimeRef) -> None:
        self.services.destroy(runtime)

    def logs(self, runtime: RuntimeRef, service: str, *, follow: bool = False,
             tail: int | None = None) -> Iterator[LogLine]:
        return self.services.logs(runtime, service, follow=follow, tail=tail)

    def events(self, runtime: RuntimeRef, service: str | None = None) -> list[Event]:
        return self.services.events(runtime, service)

    def close(self) -> None:
        if self._local is not None:
            self._local.close()
