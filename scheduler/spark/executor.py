"""SparkExecutor: the Executor protocol's job part over a standalone Spark cluster.

How an application runs (and why):
- A JVM application (Java/Scala jar) whose resource is a URL the workers fetch (http(s), hdfs,
  s3a, or local: for a path on every worker) goes through the master's REST submission protocol
  in cluster mode: the driver runs on a worker; status, kill and the driver's output (from its
  worker's web UI) come from the cluster.
- A Python application runs in client mode, driven by the engine: Spark refuses cluster mode for
  Python on a standalone cluster ("Cluster deploy mode is currently not supported for python
  applications on standalone clusters", checked with spark-submit 4.0.1; the REST protocol accepts
  a PythonRunner submission but then runs tenant code on a worker as the worker's user, with the
  worker's interpreter and files). The driver is spark-submit from the engine's virtual
  environment (.engines/spark), run as a job of the local kind: in its organization's sandbox,
  supervised, its output the job's log, cancel kills it and so ends the application. A jar whose
  resource is a path on this machine (a pipeline's directory) or `kind: client` runs that way too.
- A pipeline step (the `spark` action) always runs its driver in client mode under the step
  agent, so the driver's output is the step's live log, `action meta:` lines are its outputs and
  cancelling the step kills the application.
- dice.yml jobs with `engine: spark` (apply, status, destroy, fire_schedules, cancel_runtime_job):
  deployed.py, on scheduler/deployedjobs.py as Flink's.
Services are not something a Spark cluster runs: those calls raise ExecutorError.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import shlex
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scheduler.base import (
    Capabilities,
    ClusterRef,
    Event,
    ExecutorError,
    GroupStatus,
    JobSpec,
    JobState,
    JobStatus,
    LogLine,
    RuntimeRef,
    ServiceGroup,
    StepJob,
    StepResult,
    base_report,
    no_batch,
)
from scheduler.local import create_executor as local_executor
from scheduler.local.state import default_root, read_json, write_json
from scheduler.local.steps import step_job as local_step_job
from scheduler.spark import rest
from scheduler.spark.app import SparkApp, from_command, from_params, java_properties
from scheduler.spark.deployed import DeployedSparkJobs
from scheduler.spark.home import engine, engine_env, engine_mounts
from scheduler.spark.managed import ManagedCluster

CAPABILITIES = Capabilities(
    files=True,  # a client-mode driver is a local job: its files are placed before it starts
    console_filesystem=True,  # steps' drivers run on this machine: their directories need no carrying
    data_engine="spark",
)

NO_SERVICES = ("a Spark cluster runs Spark applications (dice.yml jobs with engine: spark, the spark pipeline "
               "action), not services: deploy {what} to the workspace's main cluster")

# driverState of the REST protocol -> ours
DRIVER_STATES = {
    "SUBMITTED": JobState.PENDING, "RUNNING": JobState.RUNNING, "RELAUNCHING": JobState.RUNNING,
    "UNKNOWN": JobState.PENDING, "FINISHED": JobState.SUCCEEDED, "FAILED": JobState.FAILED,
    "ERROR": JobState.FAILED, "KILLED": JobState.CANCELLED,
}
_APP_ID = re.compile(r"with app ID (app-[0-9]+-[0-9]+)")
_REMOTE = re.compile(r"^(https?|hdfs|s3a|local)://?", re.IGNORECASE)


def driver_host(master: rest.Master, configured: str = "") -> str:
    """The address executors reach a client-mode driver at: the configured one, else this
    machine's address on the route to the master (127.0.0.1 for a master on loopback)."""
    if configured:
        return configured
    host = urllib.parse.urlsplit(master.rest).hostname or "127.0.0.1"
    if host in ("localhost", "127.0.0.1", "::1"):
        return "127.0.0.1"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((host, 7077))
            return probe.getsockname()[0]
    except OSError:
        return socket.gethostname()


# What the step agent sets for a step's commands beside its spec's `envs` (agent.runner.step_env)
# that names the step's own files on the console's machine: the driver's, never the executors'.
STEP_FILES = ("METAFILE", "WORKDIR")


def step_app_env(spec: dict, params_envs: dict[str, str]) -> dict[str, str]:
    """The environment of a `spark` step's application: the step's `envs` (the pipeline's, with its
    `${{ configs.* }}` filled, then PIPELINE_ID and DICE_*), the params' `envs` over the
    pipeline's, and the agent's PIPELINE_TASK_ALIAS and PIPELINE_TASK_RUN_ID, as a custom-script
    step has them; the platform's names (PIPELINE_*, DICE_*) are not the params' to change."""
    given = {str(k): str(v) for k, v in (spec.get("envs") or {}).items() if k not in STEP_FILES}
    platform = {k: v for k, v in given.items() if k.startswith(("PIPELINE_", "DICE_"))}
    return {**given, **params_envs, **platform, "PIPELINE_TASK_ALIAS": str(spec.get("alias") or ""),
            "PIPELINE_TASK_RUN_ID": str(spec.get("task_run") or "")}


class SparkExecutor:
    """One standalone Spark cluster (ClusterRef.config: `endpoint` the master's REST URL, `ui`,
    `master`, `driver_host`, `root` where client-mode drivers keep their state; `managed` for the
    console's own local cluster, started on first use by scheduler.spark.managed)."""

    kind = "spark"
    capabilities = CAPABILITIES

    def __init__(self, cluster: ClusterRef, master: rest.Master | None = None):
        self.cluster = cluster
        self.config = dict(cluster.config)
        self.root = Path(self.config.get("root") or default_root()).resolve()
        self._master = master
        self._lock = threading.Lock()
        self._version = ""

    # ---- where things are ------------------------------------------------------------------

    @property
    def managed(self) -> ManagedCluster | None:
        return ManagedCluster(self.cluster, self.root) if self.config.get("managed") else None

    @property
    def master(self) -> rest.Master:
        if self._master is None:
            managed = self.managed
            self._master = managed.master() if managed else rest.Master.from_config(self.config)
        return self._master

    def ready(self) -> rest.Master:
        """The master, started first when it is the console's managed cluster and not running."""
        managed = self.managed
        return managed.ensure() if managed else self.master

    @property
    def drivers(self):
        """The local kind's executor that runs client-mode drivers (the same state root as the
        local cluster's, so its supervision and sandboxes are the same)."""
        return local_executor(ClusterRef(name=os.environ.get("DICE_LOCAL_CLUSTER", "local"), kind="local",
                                         config={k: self.config[k] for k in ("root", "allow_shared_tenancy")
                                                 if k in self.config}))

    def _record_path(self, name: str, namespace: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{namespace}--{name}")[:200]
        return self.root / "spark" / re.sub(r"[^A-Za-z0-9_.-]+", "-", self.cluster.name) / f"{safe}.json"

    def _record(self, name: str, namespace: str) -> dict | None:
        return read_json(self._record_path(name, namespace))

    # ---- jobs ------------------------------------------------------------------------------

    def run_job(self, job: JobSpec) -> JobStatus:
        """Start the application unless a job of that name exists (REST submission or a client-mode
        driver, see the module's docstring); returns its status."""
        with self._lock:
            if self._record(job.name, job.namespace) is not None:
                return self.job_status(job.name, job.namespace)
            existing = self.drivers.job_status(job.name, job.namespace)
            if existing.state is not JobState.MISSING:
                return existing
            app = from_command(job.command, job.envs, job.name)
            self.ready()
            if app.python or app.kind == "client" or not _REMOTE.match(app.resource):
                return self.drivers.run_job(self.driver_job(job, app))
            submission = rest.create(self.master, resource=app.resource, main_class=app.main_class,
                                     args=list(app.args),
                                     properties={**self._properties(app, job.name), **app.executor_envs()},
                                     envs=app.envs, version=self.version())
            write_json(self._record_path(job.name, job.namespace),
                       {"submission": submission, "submitted": time.time(), "name": job.name})
            return self.job_status(job.name, job.namespace)

    def _properties(self, app: SparkApp, name: str) -> dict[str, str]:
        props = {"spark.app.name": name, **app.properties()}
        props.setdefault("spark.ui.enabled", "false")  # a UI per driver costs memory and a port each
        return props

    def client_command(self, app: SparkApp, workdir: str, name: str) -> tuple[list[str], dict[str, str]]:
        """spark-submit in client mode against this cluster: (argv, environment)."""
        venv, home = engine()
        host = driver_host(self.master, str(self.config.get("driver_host") or ""))
        extras = {"spark.ui.enabled": "false",  # a UI per driver costs memory and a port each
                  "spark.driver.host": host,
                  "spark.driver.bindAddress": "0.0.0.0", "spark.local.dir": f"{workdir}/.spark-local",
                  "spark.pyspark.python": str(venv / "bin" / "python")}
        client = dataclasses.replace(app, conf={**extras, **app.conf}, name=app.name or name)
        argv = [str(venv / "bin" / "spark-submit"), *client.submit_args(self.master.url, "client")]
        # A sandbox has a hostname of its own that resolves nowhere: Spark must not look it up.
        local = {"SPARK_LOCAL_IP": host, "SPARK_LOCAL_HOSTNAME": host}
        return argv, {**engine_env(venv, home), **app.envs, **local}

    def driver_job(self, job: JobSpec, app: SparkApp) -> JobSpec:
        """The local job that drives a client-mode application in its tenant's sandbox. The
        application's environment is the driver process's own, and reaches the executors as
        `spark.executorEnv.*` properties in a file placed for the job (mode 0600, its tenant's),
        never on the command line, which the job's record keeps and `ps` shows."""
        workdir = job.workdir or str(self.root / "spark-drivers" / job.namespace / job.name)
        app, placed = app.placed_properties()
        argv, env = self.client_command(app, workdir, job.name)
        files = dict(job.files)
        if placed:
            path = f"{workdir}/.dice/executor-env.properties"
            files[path] = java_properties(placed)
            argv = [argv[0], "--properties-file", path, *argv[1:]]
        venv, _ = engine()
        return dataclasses.replace(
            job, command=argv, envs={**job.envs, **env}, workdir=workdir, files=files,
            mem=0,  # the JVM sizes itself from spark.driver.memory; an address-space limit would kill it
            mounts={**job.mounts, **engine_mounts(venv), workdir: "rw"},
        )

    def job_status(self, name: str, namespace: str = "") -> JobStatus:
        record = self._record(name, namespace)
        if record is None:
            return self.drivers.job_status(name, namespace)
        answer = rest.status(self.master, record["submission"])
        if not answer.get("success"):
            return JobStatus(name=name, state=JobState.MISSING, message=str(answer.get("message") or ""))
        state = DRIVER_STATES.get(str(answer.get("driverState")), JobState.PENDING)
        if state.finished and "finished" not in record:
            record["finished"] = time.time()
            write_json(self._record_path(name, namespace), record)
        message = str(answer.get("message") or "")
        return JobStatus(name=name, state=state, started=record.get("submitted"), finished=record.get("finished"),
                         exit_code=0 if state is JobState.SUCCEEDED else (1 if state.finished else None),
                         message=f"driver {record['submission']}: {answer.get('driverState')}"
                                 + (f" ({message})" if message else ""))

    def cancel_job(self, name: str, namespace: str = "") -> None:
        record = self._record(name, namespace)
        if record is None:
            self.drivers.cancel_job(name, namespace)
            return
        answer = rest.kill(self.master, record["submission"])
        if not answer.get("success") and not self.job_status(name, namespace).state.finished:
            raise ExecutorError(f"the Spark master did not kill {record['submission']}: {answer.get('message')}")

    def job_logs(self, name: str, namespace: str = "", *, follow: bool = False) -> Iterator[LogLine]:
        record = self._record(name, namespace)
        if record is None:
            yield from self.drivers.job_logs(name, namespace, follow=follow)
            return
        # One numbering for a cursor to follow: the driver's stdout as it grows, then, once the
        # driver has finished (so stdout no longer grows), its stderr (Spark's own log) after it.
        offset, number, partial = 0, 0, ""
        while True:
            done = self.job_status(name, namespace).state
            finished = done.finished or done is JobState.MISSING
            worker = self._worker_ui(record["submission"])
            if worker:
                while True:
                    text, after = rest.driver_log(worker, record["submission"], "stdout", offset)
                    lines = (partial + text).split("\n")
                    partial = lines.pop()
                    for line in lines:
                        number += 1
                        yield LogLine(source=name, number=number, timestamp=time.time(), text=line)
                    if after == offset or not finished:
                        break
                    offset = after
                offset = max(offset, after)
            if not follow or finished:
                if partial:
                    number += 1
                    yield LogLine(source=name, number=number, timestamp=time.time(), text=partial)
                if finished and worker:
                    err, err_offset = "", 0
                    while True:
                        text, after = rest.driver_log(worker, record["submission"], "stderr", err_offset)
                        err += text
                        if after == err_offset:
                            break
                        err_offset = after
                    for line in err.splitlines():
                        number += 1
                        yield LogLine(source=name, number=number, timestamp=time.time(), text=line,
                                      stream="stderr")
                return
            time.sleep(1.0)

    def _worker_ui(self, submission: str) -> str:
        answer = rest.status(self.master, submission)
        worker = answer.get("workerId")
        if not worker:
            return ""
        for entry in rest.master_json(self.master).get("workers", []):
            if entry.get("id") == worker:
                return str(entry.get("webuiaddress") or "")
        return ""

    def job_details(self, name: str, namespace: str = "", timeout: float = 3.0) -> dict[str, Any]:
        """What the run page shows of a job or step: its Spark application's id and state as the
        master knows it (an application is named after its job), and the master's page of it (the
        Spark UI, which answered this very question: so it is reachable). {} when the master has no
        application of that name (not started yet, or gone from its history); {"error"} when the
        master cannot be asked."""
        record = self._record(name, namespace)
        try:
            state = rest.master_json(self.master, timeout=timeout)
        except ExecutorError as exc:
            return {"engine": "spark", "error": str(exc)}
        apps = [*(state.get("activeapps") or []), *(state.get("completedapps") or [])]
        mine = [a for a in apps if a.get("name") == name]
        if not mine and record is None:  # renamed by its code (builder.appName): its driver logged the id
            app_id = self._logged_app_id(name, namespace)
            mine = [a for a in apps if app_id and a.get("id") == app_id]
        details: dict[str, Any] = {"engine": "spark"}
        if record is not None:
            details["driver_id"] = record["submission"]
        if not mine:
            return details if record is not None else {}
        app = max(mine, key=lambda a: a.get("starttime") or 0)
        app_id = str(app.get("id") or "")
        details.update(application_id=app_id, state=str(app.get("state") or ""),
                       ui=f"{self.master.ui}/app/?{urllib.parse.urlencode({'appId': app_id})}",
                       cores=app.get("cores"), memory_per_executor_mib=app.get("memoryperexecutor"),
                       started=(app.get("starttime") or 0) / 1000 or None)
        return details

    def _logged_app_id(self, name: str, namespace: str, lines: int = 400) -> str:
        """The application id a client-mode driver logs when it connects ("Connected to Spark cluster
        with app ID app-..."), from the first lines of its job's log."""
        try:
            for number, line in enumerate(self.drivers.job_logs(name, namespace)):
                if number >= lines:
                    break
                found = _APP_ID.search(line.text)
                if found:
                    return found[1]
        except ExecutorError:
            return ""
        return ""

    def job_log_version(self, name: str, namespace: str = "") -> object | None:
        if self._record(name, namespace) is None:
            return self.drivers.job_log_version(name, namespace)
        return None

    def job_batch(self):
        return no_batch()

    def start_step(self, step: StepJob) -> JobStatus:
        """The `spark` action: the agent runs the driver (client mode) as the step's command.

        The application, its driver and its executors, sees what a custom-script step sees
        (step_app_env: the pipeline's `envs`, PIPELINE_*, DICE_*) with the params' `envs` over the
        pipeline's. The executors get it as the dice.yml jobs' do, through a properties file placed
        0600 in the step's folder (never on the command line, which the step's script and `ps`
        show), with every variable and property whose value holds a secret the run masks (a
        secret config filled in) named in spark.redaction.regex."""
        existing = self.drivers.job_status(step.name, step.namespace)
        if existing.state is not JobState.MISSING:
            return existing
        spec = dict(step.spec)
        app = from_params(spec.get("params") or {}, f"step {spec.get('alias') or step.name}")
        masked = tuple(sorted({s for s in (*step.secrets, *(spec.get("mask") or ())) if s}))
        envs = step_app_env(spec, app.envs)
        app = dataclasses.replace(app, envs=envs, secret_envs=tuple(sorted(
            name for name, value in envs.items() if any(s in value for s in masked))))
        app, placed = app.placed_properties(masked)
        self.ready()
        argv, env = self.client_command(app, spec["workdir"], step.name)
        files = {}
        if placed:
            path = f"{step.folder}/spark-properties"
            files[path] = java_properties(placed)
            argv = [argv[0], "--properties-file", path, *argv[1:]]
        spec["commands"] = [shlex.join(argv)]
        spec["shell"] = "/bin/sh"
        spec["envs"] = {**(spec.get("envs") or {}), **env}
        job = local_step_job(dataclasses.replace(step, spec=spec))
        venv, _ = engine()
        # job.files holds the spec as the local agent reads it (the Go runner's has its script)
        return self.drivers.run_job(dataclasses.replace(job, mounts={**job.mounts, **engine_mounts(venv)},
                                                        files={**job.files, **files}))

    def step_result(self, name: str, namespace: str, status: JobStatus) -> StepResult | None:
        return None  # the agent writes the result to the step's folder (as on the local kind)

    # ---- a runtime's `engine: spark` jobs (deployed.py) ---------------------------------------

    @functools.cached_property
    def deployed(self) -> DeployedSparkJobs:
        return DeployedSparkJobs(self)

    def apply(self, group: ServiceGroup) -> None:
        """Run the group's `engine: spark` jobs (once per release, or on their schedule); a group
        with services or addons is refused: those run on the workspace's main cluster."""
        if group.spec.services or group.spec.addons:
            raise ExecutorError(NO_SERVICES.format(what=f"runtime {group.runtime.name}'s services and addons"))
        self.deployed.apply(group)

    def status(self, runtime: RuntimeRef) -> GroupStatus:
        return self.deployed.status(runtime)

    def fire_schedules(self, now: float | None = None) -> list[str]:
        """Submit the runs of scheduled jobs that came due (the console's beat calls this)."""
        return self.deployed.fire_schedules(now)

    def cancel_runtime_job(self, runtime: RuntimeRef, job: str) -> list[str]:
        """Cancel the runs still going of the runtime's `engine: spark` job `job`; the runs cancelled."""
        return self.deployed.cancel(runtime, job)

    def has_service(self, runtime: RuntimeRef, service: str) -> bool:
        return False  # EngineRouted asks: no service ever runs here

    # ---- what a Spark cluster does not run ---------------------------------------------------

    def scale(self, runtime: RuntimeRef, service: str, replicas: int) -> None:
        raise ExecutorError(NO_SERVICES.format(what=f"service {service}"))

    def restart(self, runtime: RuntimeRef, service: str) -> None:
        raise ExecutorError(NO_SERVICES.format(what=f"service {service}"))

    def destroy(self, runtime: RuntimeRef) -> None:
        self.deployed.destroy(runtime)  # its schedules stop, its running jobs are cancelled

    def logs(self, runtime: RuntimeRef, service: str, *, follow: bool = False,
             tail: int | None = None) -> Iterator[LogLine]:
        raise ExecutorError(NO_SERVICES.format(what=f"service {service}"))

    def events(self, runtime: RuntimeRef, service: str | None = None) -> list[Event]:
        return []

    # ---- inspection ------------------------------------------------------------------------

    def version(self) -> str:
        if not self._version:
            self._version = rest.version(self.master)
        return self._version

    def check(self) -> dict[str, Any]:
        report = SparkInspector(self.cluster, self.master).check()
        if self.managed and not report["reachable"]:
            report["error"] = ("the console's managed Spark cluster is not running: it starts with the first "
                               f"Spark job or step ({report['error']})")
        return report

    def snapshot(self) -> dict[str, Any]:
        return SparkInspector(self.cluster, self.master).snapshot()

    def set_node_labels(self, node: str, labels: dict[str, str | None]) -> dict[str, str]:
        raise ExecutorError("a Spark cluster's workers have no labels the console can set")

    def inspection_data(self) -> dict[str, Any]:
        return SparkInspector(self.cluster, self.master).inspection_data()


class SparkInspector:
    """The check and capability report of a standalone cluster: its version (REST), workers,
    cores and memory (the master's JSON)."""

    capabilities = CAPABILITIES

    def __init__(self, cluster: ClusterRef, master: rest.Master | None = None):
        self.cluster = cluster
        self._master = master

    @property
    def master(self) -> rest.Master:
        if self._master is None:
            self._master = rest.Master.from_config(self.cluster.config)
        return self._master

    def check(self) -> dict[str, Any]:
        try:
            version = rest.version(self.master)
            state = rest.master_json(self.master)
        except ExecutorError as exc:
            return base_report(False, error=str(exc), capabilities=CAPABILITIES)
        report = base_report(True, version=version, capabilities=CAPABILITIES)
        workers = [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]
        report.update({
            "master": self.master.url, "rest": self.master.rest, "ui": self.master.ui,
            "status": state.get("status", ""),
            "workers": [{"id": w.get("id"), "host": w.get("host"), "cores": w.get("cores"),
                         "cores_used": w.get("coresused"), "memory_mib": w.get("memory"),
                         "memory_used_mib": w.get("memoryused"), "ui": w.get("webuiaddress")} for w in workers],
            "cores": state.get("cores", 0), "cores_used": state.get("coresused", 0),
            "memory_mib": state.get("memory", 0), "memory_used_mib": state.get("memoryused", 0),
            "active_apps": len(state.get("activeapps", [])), "active_drivers": len(state.get("activedrivers", [])),
            "runs": ["jar applications in cluster mode (REST submission)",
                     "Python applications and pipeline steps in client mode (a sandboxed local driver)"],
            "refuses": ["services", "addons"],
        })
        if not workers:
            report["error"] = "the master has no alive worker: applications will wait"
        return report

    def snapshot(self) -> dict[str, Any]:
        """The workers as nodes (cores in millicores, memory in bytes, as the other kinds report)."""
        state = rest.master_json(self.master)
        nodes = []
        for w in state.get("workers", []):
            alive = w.get("state") == "ALIVE"
            capacity = {"cpu": int(w.get("cores") or 0) * 1000, "memory": int(w.get("memory") or 0) << 20}
            nodes.append({
                "name": str(w.get("id")), "capacity": capacity, "allocatable": capacity,
                "requests": {"cpu": int(w.get("coresused") or 0) * 1000,
                             "memory": int(w.get("memoryused") or 0) << 20},
                "limits": {"cpu": 0, "memory": 0}, "labels": {"spark.apache.org/worker": str(w.get("host"))},
                "conditions": [{"type": "Ready", "status": "True" if alive else "False",
                                "reason": str(w.get("state")), "message": ""}],
                "ready": alive, "unschedulable": not alive, "pod_count": 0,
                "internal_ip": str(w.get("host") or ""), "kubelet_version": f"spark worker {w.get('webuiaddress')}",
            })
        return {"nodes": nodes, "namespaces": [], "pods": [], "workloads": []}

    def set_node_labels(self, node: str, labels: dict[str, str | None]) -> dict[str, str]:
        raise ExecutorError("a Spark cluster's workers have no labels the console can set")

    def inspection_data(self) -> dict[str, Any]:
        return {}
