"""The Executor of a Flink cluster: a session cluster reached by its REST URL, or the managed
local one (session.py). It runs Flink jobs (run_job with `flink run` arguments), stops them with
savepoints, keeps `engine: flink` services of a runtime running (services.py), runs its
`engine: flink` jobs on deploy and on their schedule (deployed.py), and runs the
`flink` pipeline action as a step (start_step): the step agent, in the tenant's sandbox on the
console's machine as the `spark` action's driver is, runs the Flink CLI against this cluster
through stepclient.py. What a Flink cluster cannot do (other steps, ordinary services, node
labels) is refused with the reason."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shlex
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
    Health,
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
from scheduler.flink import stepclient
from scheduler.flink.action import action_params
from scheduler.flink.deployed import DeployedFlinkJobs
from scheduler.flink.jobs import FlinkJobs
from scheduler.flink.rest import FlinkRest
from scheduler.flink.services import FlinkServices
from scheduler.flink.session import LocalSession, client_settings, flink_home, python_home
from scheduler.flink.submit import confined, flink_job_id
from scheduler.local import LocalExecutor
from scheduler.local import create_executor as local_executor
from scheduler.local.state import default_root
from scheduler.local.steps import step_job as local_step_job

# Flink jobs, savepoints and the `flink` action's steps; no images, namespaces, other steps or
# ordinary services. A step's agent runs on this machine (console_filesystem: the run's
# directories need no carrying; files: its client and config are placed before it starts).
CAPABILITIES = Capabilities(runtimes=False, steps=True, savepoints=True, inspection=True, data_engine="flink",
                            console_filesystem=True, files=True)
_NOT_HERE = "a Flink cluster runs Flink jobs and `engine: flink` services only"
STEP_CLIENT = Path(stepclient.__file__).read_text()


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
        self.deployed = DeployedFlinkJobs(self)

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

    @staticmethod
    def engine_mounts(venv: Path | None) -> dict[str, str]:
        """What a sandboxed Flink client sees of the engine: its venv and the Python it runs on."""
        mounts: dict[str, str] = {}
        if venv is not None:
            mounts[str(venv)] = "ro"
            home = python_home()
            if not home.startswith(("/usr/", "/opt/")):
                mounts[home] = "ro"
            target = os.path.dirname(os.path.dirname(os.path.realpath(venv / "bin" / "python")))
            if not target.startswith(("/usr/", "/opt/")):
                mounts.setdefault(target, "ro")
        return mounts

    def jobs(self) -> FlinkJobs:
        venv = engine_venv("flink")
        mounts = self.engine_mounts(venv)
        env = {"PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin"} if venv is not None else {}
        return FlinkJobs(self.cluster.name or "flink", self.rest(), self.dir, self.local(), venv or Path("/nonexistent"),
                         mounts, env)

    # ---- jobs -------------------------------------------------------------------------------------

    def run_job(self, job: JobSpec) -> JobStatus:
        if ("-py" in job.command or "--python" in job.command) and engine_venv("flink") is None:
            raise ExecutorUnavailable(f"job {job.name!r} is a Python job: {missing_hint('flink')}")
        return self.jobs().run(job)

    def job_status(self, name: str, namespace: str = "") -> JobStatus:
        if self._is_step(name, namespace):
            return self.steps().job_status(name, namespace)
        return self.jobs().status(name, namespace)

    def cancel_job(self, name: str, namespace: str = "") -> None:
        if self._is_step(name, namespace):
            # The agent's process first (its client cancels the job as it stops), then the job
            # itself: a client killed before it could leaves a session job running.
            self.steps().cancel_job(name, namespace)
            rest = FlinkRest(self._step_record(name, namespace).get("rest") or self.rest().url)
            job_id = flink_job_id(self.cluster.name or "flink", namespace, name)
            details = rest.job(job_id)
            if details is not None and str(details.get("state")) not in ("FINISHED", "FAILED", "CANCELED"):
                rest.cancel(job_id)
            return
        self.jobs().cancel(name, namespace)

    def stop_job(self, name: str, namespace: str = "", savepoint_dir: str = "") -> str:
        """Stop a streaming job with a savepoint (Capabilities.savepoints); its path comes back,
        to start the next job from (`flink run -s PATH ...`)."""
        return self.jobs().stop_with_savepoint(name, namespace, savepoint_dir or self.savepoint_dir())

    def job_logs(self, name: str, namespace: str = "", *, follow: bool = False) -> Iterator[LogLine]:
        if self._is_step(name, namespace):
            return self.steps().job_logs(name, namespace, follow=follow)
        return self.jobs().logs(name, namespace, follow=follow)

    def job_log_version(self, name: str, namespace: str = "") -> object | None:
        if self._is_step(name, namespace):
            return self.steps().job_log_version(name, namespace)
        return None

    def job_batch(self) -> contextlib.AbstractContextManager[None]:
        return no_batch()

    # ---- the `flink` action's steps ----------------------------------------------------------

    def steps(self) -> LocalExecutor:
        """The local kind's executor that runs step agents (the local cluster's own state root, so
        a step's uid, folder and supervision are those of the run's other steps on this machine)."""
        config = {k: self.cluster.config[k] for k in ("root", "allow_shared_tenancy") if k in self.cluster.config}
        return local_executor(ClusterRef(name=os.environ.get("DICE_LOCAL_CLUSTER", "local"), kind="local",
                                         config=config))

    def _step_path(self, name: str, namespace: str) -> Path:
        safe = str.maketrans(dict.fromkeys("/\\\x00", "_"))
        return self.dir / "steps" / (namespace or "_").translate(safe) / f"{name.translate(safe)}.json"

    def _step_record(self, name: str, namespace: str) -> dict:
        try:
            return json.loads(self._step_path(name, namespace).read_text())
        except (OSError, ValueError):
            return {}

    def _is_step(self, name: str, namespace: str) -> bool:
        return self._step_path(name, namespace).exists()

    def start_step(self, step: StepJob) -> JobStatus:
        """The `flink` action: the agent runs stepclient.py (the Flink CLI against this cluster,
        followed until the job ends) as the step's command, in the tenant's sandbox."""
        spec = dict(step.spec)
        where = f"step {spec.get('alias') or step.name}"
        if spec.get("type") != "flink":
            raise ExecutorError(f"{_NOT_HERE}: {where} is a {spec.get('type')!r} step, which runs on the "
                                "workspace's main cluster")
        if self._is_step(step.name, step.namespace):
            return self.steps().job_status(step.name, step.namespace)
        action = action_params(spec.get("params") or {}, where)
        venv = engine_venv("flink")
        if venv is None:
            raise ExecutorUnavailable(f"{where}: {missing_hint('flink')}")
        dirs = list((spec.get("dirs") or {}).values())
        resource = confined(action.resource, spec["workdir"], dirs, f"{where}: resource")
        rest = self.rest()  # starts the managed session when it is not running
        job_id = flink_job_id(self.cluster.name or "flink", step.namespace, step.name)
        home = flink_home(venv)
        python = str(venv / "bin" / "python")
        argv = [str(home / "bin" / "flink"), "run", "-m", rest.url.split("://", 1)[1],
                f"-Dpipeline.name={step.name}", f"-D$internal.pipeline.job-id={job_id}"]
        if action.detach:
            argv.append("-d")
        if action.parallelism:
            argv += ["-p", str(action.parallelism)]
        if action.python:
            argv += ["-pyclientexec", python, "-pyexec", python, "-py", resource]
        else:
            argv += (["-c", action.entry_class] if action.entry_class else []) + [resource]
        argv += list(action.args)
        notes = [f"submitting to Flink cluster {self.cluster.name}: {shlex.join(action.command())}"]
        if action.kind == "FlinkJob":
            notes.append("flinkConf.kind FlinkJob: a session cluster runs it as a session job")
        if action.resources:
            notes.append(f"{', '.join(action.resources)}: ignored on a session cluster "
                         "(its processes are sized by the cluster)")
        config = {"argv": argv, "rest": rest.url, "job_id": job_id, "detach": action.detach, "notes": notes,
                  "cluster": self.cluster.name, "flink_home": str(home), "conf": client_settings(venv, rest.url),
                  "env": {"PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", "PYFLINK_CLIENT_EXECUTABLE": python}}
        client, config_path = f"{step.folder}/flink-step.py", f"{step.folder}/flink-step.json"
        spec["commands"] = [shlex.join([python, "-S", client, config_path])]
        spec["shell"] = "/bin/sh"
        job = local_step_job(dataclasses.replace(step, spec=spec))
        path = self._step_path(step.name, step.namespace)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"name": step.name, "namespace": step.namespace, "job_id": job_id, "rest": rest.url}))
        return self.steps().run_job(dataclasses.replace(
            job, mounts={**job.mounts, **self.engine_mounts(venv)},
            files={**job.files, client: STEP_CLIENT, config_path: json.dumps(config)}))  # the spec: local_step_job's

    def step_result(self, name: str, namespace: str, status: JobStatus) -> StepResult | None:
        return None  # the agent writes the result to the step's folder (as on the local kind)

    # ---- a runtime's `engine: flink` services ----------------------------------------------------

    def apply(self, group: ServiceGroup) -> None:
        """The group's `engine: flink` services (streaming jobs kept running) and jobs (bounded runs:
        deployed.py); the jobs are checked first, so a bad job refuses the group before anything runs."""
        self.deployed.plan(group)
        self.services.apply(dataclasses.replace(group, spec=group.spec.model_copy(update={"jobs": {}})))
        self.deployed.apply(group)

    def fire_schedules(self, now: float | None = None) -> list[str]:
        """Submit the runs of the deployed jobs whose `schedule` came due (the console's beat calls it)."""
        return self.deployed.fire_schedules(now)

    def cancel_runtime_job(self, runtime: RuntimeRef, job: str) -> list[str]:
        """Cancel the runs still going of the runtime's `engine: flink` job `job`; the runs cancelled."""
        return self.deployed.cancel(runtime, job)

    def has_service(self, runtime: RuntimeRef, service: str) -> bool:
        """Whether the runtime's `service` is one of this cluster's (EngineRouted asks)."""
        return service in self.services._load(runtime).get("services", {})

    def status(self, runtime: RuntimeRef) -> GroupStatus:
        services = self.services.status(runtime)
        if not self.deployed.has_jobs(runtime):
            return services
        jobs = self.deployed.status(runtime)
        if not services.services:
            return jobs
        order = [Health.UNKNOWN, Health.MISSING, Health.DEGRADED, Health.PROGRESSING, Health.HEALTHY]
        worst = min((services, jobs), key=lambda part: order.index(part.health))
        return GroupStatus(runtime, worst.health, worst.reason, services=services.services, jobs=jobs.jobs)

    def scale(self, runtime: RuntimeRef, service: str, replicas: int) -> None:
        self.services.scale(runtime, service, replicas)

    def restart(self, runtime: RuntimeRef, service: str) -> None:
        self.services.restart(runtime, service)

    def destroy(self, runtime: RuntimeRef) -> None:
        self.deployed.destroy(runtime)
        self.services.destroy(runtime)

    def logs(self, runtime: RuntimeRef, service: str, *, follow: bool = False,
             tail: int | None = None) -> Iterator[LogLine]:
        return self.services.logs(runtime, service, follow=follow, tail=tail)

    def events(self, runtime: RuntimeRef, service: str | None = None) -> list[Event]:
        return self.services.events(runtime, service)

    def close(self) -> None:
        if self._local is not None:
            self._local.close()
