"""The console's own Spark cluster for the standalone mode: a master and one worker from the engine's
virtual environment, started on first use as jobs of the local kind (so each runs in a sandbox
of its own tenant, `spark-<cluster>`, is supervised and survives a console restart), and started
again when one of them ended. Sized by the cluster config (`worker_cores`, `worker_memory_mib`,
from DICE_SPARK_WORKER_CORES / DICE_SPARK_WORKER_MEMORY; the worker offers worker_cores x
`worker_cpu_ratio` task slots, the cluster's CPU overcommit: advertised_cores()); its daemons get a
small heap (`daemon_memory`, 256m)."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from scheduler.base import ClusterRef, ExecutorUnavailable, JobSpec, JobState
from scheduler.local import create_executor as local_executor
from scheduler.local.state import read_json, write_json
from scheduler.spark import rest
from scheduler.spark.home import engine, engine_env, engine_mounts

NAMESPACE = "spark-managed"
START_TIMEOUT = 120.0  # seconds for the master to answer and the worker to register (a busy machine)
_GUARD = threading.Lock()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ManagedCluster:
    """One managed cluster: its state directory (ports, attempts) under the local root."""

    def __init__(self, cluster: ClusterRef, root: Path):
        self.cluster = cluster
        self.name = cluster.name
        self.root = root
        self.dir = root / "spark-managed" / cluster.name
        self.config = cluster.config

    def ports(self) -> dict[str, int]:
        """The ports the cluster listens on: chosen free once, then kept (the master's URL must not
        change under running drivers)."""
        path = self.dir / "ports.json"
        ports = read_json(path)
        if not ports:
            ports = {"master": _free_port(), "rest": _free_port(), "ui": _free_port(), "worker_ui": _free_port()}
            self.dir.mkdir(parents=True, exist_ok=True)
            write_json(path, ports)
        return ports

    def master(self) -> rest.Master:
        ports = self.ports()
        return rest.Master(rest=f"http://127.0.0.1:{ports['rest']}", ui=f"http://127.0.0.1:{ports['ui']}",
                           url=f"spark://127.0.0.1:{ports['master']}")

    @property
    def _local(self):
        return local_executor(ClusterRef(name=os.environ.get("DICE_LOCAL_CLUSTER", "local"), kind="local",
                                         config={k: self.config[k] for k in ("root",) if k in self.config}))

    def _daemon(self, role: str, attempt: int) -> JobSpec:
        venv, home = engine()
        ports = self.ports()
        work = self.dir / role
        env = {**engine_env(venv, home), "SPARK_DAEMON_MEMORY": str(self.config.get("daemon_memory") or "256m"),
               "SPARK_LOG_DIR": str(work / "logs"), "SPARK_WORKER_DIR": str(work / "work"),
               "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOCAL_HOSTNAME": "127.0.0.1"}
        files = {}
        if role == "master":
            props = str(work / "master.properties")
            files[props] = (f"spark.master.rest.enabled true\nspark.master.rest.port {ports['rest']}\n"
                            "spark.master.rest.host 127.0.0.1\nspark.ui.reverseProxy false\n")
            argv = [str(venv / "bin" / "spark-class"), "org.apache.spark.deploy.master.Master",
                    "--host", "127.0.0.1", "--port", str(ports["master"]), "--webui-port", str(ports["ui"]),
                    "--properties-file", props]
        else:
            cores = self.advertised_cores()
            memory = int(self.config.get("worker_memory_mib") or 768)
            argv = [str(venv / "bin" / "spark-class"), "org.apache.spark.deploy.worker.Worker",
                    "--host", "127.0.0.1", "--cores", str(cores), "--memory", f"{memory}m",
                    "--webui-port", str(ports["worker_ui"]), "--work-dir", str(work / "work"),
                    f"spark://127.0.0.1:{ports['master']}"]
        return JobSpec(name=f"{self.name}-{role}-{attempt}", command=argv, envs=env, workdir=str(work),
                       namespace=NAMESPACE, tenant=f"spark-{self.name}", mem=0, cpu=1.0, files=files,
                       labels={"dice.io/spark-managed": self.name, "dice.io/role": role},
                       mounts={**engine_mounts(venv), str(work): "rw"})

    def advertised_cores(self) -> int:
        """The task slots the worker offers: its cores (`worker_cores`) times the cluster's CPU
        overcommit ratio (`worker_cpu_ratio`, the highest set for any workspace on the cluster),
        rounded down. Standalone Spark has no requests and limits: the master hands out whole
        slots, and an executor runs as many tasks at once as it holds slots, unbounded by a cgroup.
        Offering cores x ratio slots is what a ratio means on a Kubernetes node (pods request
        cores / ratio of its CPUs): more executors fit beside each other and share the CPUs."""
        cores = int(self.config.get("worker_cores") or 2)
        ratio = max(1.0, float(self.config.get("worker_cpu_ratio") or 1.0))
        return max(cores, int(cores * ratio + 1e-9))

    def running(self) -> dict[str, bool]:
        attempts = read_json(self.dir / "attempts.json") or {}
        local = self._local
        return {role: local.job_status(f"{self.name}-{role}-{attempts.get(role, 0)}", NAMESPACE).state
                in (JobState.RUNNING, JobState.PENDING) for role in ("master", "worker")}

    def ensure(self, wait: bool = True) -> rest.Master:
        """Start what is not running (master first), then wait until the master answers with an
        alive worker. Safe to call before every use: a running cluster costs one status read."""
        with _GUARD:
            attempts = read_json(self.dir / "attempts.json") or {}
            alive = self.running()
            cores = self.advertised_cores()
            if alive["worker"] and attempts.get("worker_cores", cores) != cores:
                # the ratio or the size changed: a worker offering the new slots replaces it (the
                # master relaunches the executors it ran on it)
                self._local.cancel_job(f"{self.name}-worker-{attempts.get('worker', 0)}", NAMESPACE)
                alive["worker"] = False
            started = False
            for role in ("master", "worker"):
                if not alive[role]:
                    if role == "worker":
                        attempts["worker_cores"] = cores
                    attempts[role] = attempts.get(role, 0) + 1
                    self.dir.mkdir(parents=True, exist_ok=True)
                    write_json(self.dir / "attempts.json", attempts)
                    self._local.run_job(self._daemon(role, attempts[role]))
                    started = True
            master = self.master()
        if wait and started:
            self.wait_ready(master)
        return master

    def wait_ready(self, master: rest.Master, timeout: float = START_TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                state = rest.master_json(master)
                if any(w.get("state") == "ALIVE" for w in state.get("workers", [])):
                    rest.version(master)  # the REST server answers too
                    return state
                last = "no worker registered yet"
            except ExecutorUnavailable as exc:
                last = str(exc)
            time.sleep(0.5)
        raise ExecutorUnavailable(f"the managed Spark cluster {self.name} did not start in {timeout:.0f}s: {last} "
                                  f"(logs: {self.dir}/*/logs and the jobs of namespace {NAMESPACE})")

    def stop(self) -> None:
        attempts = read_json(self.dir / "attempts.json") or {}
        for role in ("worker", "master"):
            self._local.cancel_job(f"{self.name}-{role}-{attempts.get(role, 0)}", NAMESPACE)
