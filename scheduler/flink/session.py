"""The managed local Flink session cluster of the standalone console: a JobManager and a
TaskManager started, sandboxed and supervised by the local engine.

Both are jobs of a LocalExecutor of their own (a root under the Flink cluster's directory, at
normal priority: a JobManager starved by idle scheduling misses its heartbeats), run in the
sandbox like any tenant process: its own uid, the engine's virtual environment and the Python
installation read-only, the cluster's directory (configuration, logs, temporary files, uploaded
jars, checkpoints and savepoints) read-write, nothing else of the console. The configuration is
private (FLINK_CONF_DIR in that directory, never the wheel's own conf/), every port is on
127.0.0.1, and the memory of each process comes from the cluster's settings (JobManager 1024m,
TaskManager 1280m by default). `ensure()` starts what is not running; the executor calls it
before each use, so a JobManager or TaskManager that died is started again (jobs of a
restarted JobManager are lost: there is no HA store, a service's job is started again from its
last savepoint by the deployment).
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from scheduler.base import ClusterRef, ExecutorError, ExecutorUnavailable, JobSpec, JobState, dns_label
from scheduler.engines import engine_venv, missing_hint
from scheduler.local import LocalExecutor

DEFAULT_JM_MEMORY = "1024m"
DEFAULT_TM_MEMORY = "1280m"
DEFAULT_SLOTS = 2
NAMESPACE = "flink-session"
TENANT = "dice-flink"  # the uid the managed cluster's processes run as
_MEMORY = re.compile(r"^([1-9][0-9]{2,5})m$")
START_TIMEOUT = 120.0


def flink_home(venv: Path) -> Path:
    """Where the apache-flink wheel keeps the Flink distribution (bin/, lib/, conf/)."""
    found = sorted(venv.glob("lib/python3*/site-packages/pyflink"))
    if not found or not (found[0] / "bin" / "jobmanager.sh").exists():
        raise ExecutorUnavailable(f"the flink engine in {venv} has no pyflink/bin/jobmanager.sh: run `make engines`")
    return found[0]


def python_home() -> str:
    """The installation the engine's venv interpreter belongs to (pyvenv.cfg `home`)."""
    return os.path.realpath(sys.base_prefix)


def memory_mib(value: str, what: str) -> int:
    match = _MEMORY.match(str(value or "").strip())
    if not match:
        raise ExecutorError(f"{what}: memory is given as <MiB>m, e.g. 1024m, not {value!r}")
    mib = int(match.group(1))
    if mib < 512:
        raise ExecutorError(f"{what}: {value} is too little for a Flink process (at least 512m)")
    return mib


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in (data or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def client_settings(venv: Path, rest_url: str) -> dict[str, Any]:
    """What a `flink run` client's private configuration holds: the cluster's REST address and
    the distribution's JVM options; nothing of the cluster's own configuration or state."""
    shipped = _flatten(yaml.safe_load((flink_home(venv) / "conf" / "config.yaml").read_text()) or {})
    host, _, port = rest_url.split("://", 1)[1].partition(":")
    conf = {key: value for key, value in shipped.items() if key.startswith("env.java.opts")}
    conf.update({"rest.address": host, "rest.port": int(port or 8081), "jobmanager.rpc.address": host,
                 "io.tmp.dirs": "/tmp", "execution.target": "remote"})
    return conf


def client_conf(venv: Path, directory: Path, rest_url: str) -> dict[str, str]:
    """A private FLINK_CONF_DIR for one `flink run` client (a tenant's PyFlink program): the
    cluster's REST address and the JVM options of the distribution, its logs and temporary files
    in its own directory; never the cluster's own configuration or state. Returns its env."""
    home = flink_home(venv)
    conf_dir, log_dir = directory / "conf", directory  # the top directory is the tenant's (mounted rw)
    conf_dir.mkdir(parents=True, exist_ok=True)
    conf = client_settings(venv, rest_url)
    (conf_dir / "config.yaml").write_text(yaml.safe_dump(conf, default_flow_style=False))
    for name in ("log4j-cli.properties", "log4j-console.properties"):
        if (home / "conf" / name).exists():
            (conf_dir / name).write_text((home / "conf" / name).read_text())
    return {"FLINK_CONF_DIR": str(conf_dir), "FLINK_LOG_DIR": str(log_dir)}


class LocalSession:
    """One managed session cluster, kept under `directory`."""

    def __init__(self, cluster: ClusterRef, directory: Path):
        self.cluster = cluster
        self.dir = Path(directory).resolve()
        config = cluster.config
        self.jm_memory = str(config.get("jobmanager_memory") or os.environ.get("DICE_FLINK_JM_MEMORY") or DEFAULT_JM_MEMORY)
        self.tm_memory = str(config.get("taskmanager_memory") or os.environ.get("DICE_FLINK_TM_MEMORY") or DEFAULT_TM_MEMORY)
        self.slots = int(config.get("slots") or os.environ.get("DICE_FLINK_SLOTS") or DEFAULT_SLOTS)
        memory_mib(self.jm_memory, "the JobManager's memory")
        memory_mib(self.tm_memory, "the TaskManager's memory")
        if not 1 <= self.slots <= 64:
            raise ExecutorError(f"a TaskManager has 1-64 task slots, not {self.slots}")
        self.local = LocalExecutor(self.dir / "local", cluster_name=f"{cluster.name}-flink", job_priority="normal",
                                   allow_shared_tenancy=True)

    @property
    def state_file(self) -> Path:
        return self.dir / "session.json"

    def state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    @property
    def rest_url(self) -> str:
        port = self.state().get("rest_port")
        return f"http://127.0.0.1:{port}" if port else ""

    @property
    def savepoints(self) -> Path:
        return self.dir / "savepoints"

    def venv(self) -> Path:
        venv = engine_venv("flink")
        if venv is None:
            raise ExecutorUnavailable(missing_hint("flink"))
        return venv

    def mounts(self) -> dict[str, str]:
        """What every sandboxed Flink process sees besides the system: the engine, Python, the cluster's directory."""
        venv = self.venv()
        mounts = {str(venv): "ro", str(self.dir / "run"): "rw"}
        home = python_home()
        if not home.startswith(("/usr/", "/etc/", "/opt/")):
            mounts[home] = "ro"
        target = os.path.realpath(venv / "bin" / "python")
        if not target.startswith((home + "/", "/usr/")):
            mounts[os.path.dirname(os.path.dirname(target))] = "ro"
        return mounts

    def _write_conf(self, rest_port: int, rpc_port: int) -> Path:
        home = flink_home(self.venv())
        run = self.dir / "run"
        conf_dir = run / "conf"
        for sub in ("conf", "log", "tmp", "uploads", "checkpoints", "savepoints"):
            (run / sub).mkdir(parents=True, exist_ok=True)
        shipped = yaml.safe_load((home / "conf" / "config.yaml").read_text()) or {}
        conf = _flatten(shipped)
        conf.update({
            "jobmanager.rpc.address": "127.0.0.1", "jobmanager.rpc.port": rpc_port,
            "jobmanager.bind-host": "127.0.0.1", "taskmanager.bind-host": "127.0.0.1",
            "taskmanager.host": "127.0.0.1",
            # named, so the TaskManager does not look up the sandbox's host name (no DNS knows it)
            "taskmanager.resource-id": f"{dns_label(self.cluster.name or 'flink')}-taskmanager",
            "rest.address": "127.0.0.1", "rest.bind-address": "127.0.0.1",
            "rest.port": rest_port, "blob.server.port": "0",
            "jobmanager.memory.process.size": self.jm_memory, "taskmanager.memory.process.size": self.tm_memory,
            "taskmanager.numberOfTaskSlots": self.slots, "parallelism.default": 1,
            "io.tmp.dirs": str(run / "tmp"), "web.upload.dir": str(run / "uploads"), "web.tmpdir": str(run / "tmp"),
            "state.checkpoints.dir": f"file://{run / 'checkpoints'}",
            "state.savepoints.dir": f"file://{run / 'savepoints'}",
            "execution.checkpointing.interval": "5s",
            "restart-strategy.type": "fixed-delay", "restart-strategy.fixed-delay.attempts": 3,
            "restart-strategy.fixed-delay.delay": "2s",
            "web.submit.enable": True, "web.cancel.enable": True,
        })
        conf.pop("env.log.dir", None)
        (conf_dir / "config.yaml").write_text(yaml.safe_dump(conf, default_flow_style=False))
        for name in ("log4j-console.properties", "log4j-cli.properties", "logback-console.xml"):
            source = home / "conf" / name
            if source.exists():
                (conf_dir / name).write_text(source.read_text())
        if self.local.sandboxes.enabled:  # the processes' uid writes logs, temporary files, savepoints
            self.local.sandboxes.own(run, TENANT, True)
        return conf_dir

    def env(self) -> dict[str, str]:
        run = self.dir / "run"
        venv = self.venv()
        return {"FLINK_CONF_DIR": str(run / "conf"), "FLINK_LOG_DIR": str(run / "log"),
                "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", "PYFLINK_CLIENT_EXECUTABLE": str(venv / "bin" / "python")}

    def _process(self, role: str, attempt: int) -> JobSpec:
        home = flink_home(self.venv())
        script = "jobmanager.sh" if role == "jobmanager" else "taskmanager.sh"
        mib = memory_mib(self.jm_memory if role == "jobmanager" else self.tm_memory, role)
        return JobSpec(name=f"{role}-{attempt}", namespace=NAMESPACE, command=[str(home / "bin" / script), "start-foreground"],
                       envs=self.env(), workdir=str(self.dir / "run"), mem=mib + 384, cpu=2.0, tenant=TENANT,
                       mounts=self.mounts(), labels={"dice/flink": role})

    def _alive(self, name: str) -> bool:
        return self.local.job_status(name, NAMESPACE).state in (JobState.PENDING, JobState.RUNNING)

    def ensure(self, wait: bool = True) -> str:
        """Start the JobManager and TaskManager unless they run; returns the REST URL."""
        state = self.state()
        attempt = int(state.get("attempt") or 0)
        jm, tm = f"jobmanager-{attempt}", f"taskmanager-{attempt}"
        if not (attempt and self._alive(jm)):
            # A new JobManager (and so new ports and configuration): its TaskManager goes too.
            if attempt:
                self.local.cancel_job(tm, NAMESPACE)
            attempt += 1
            rest_port, rpc_port = free_port(), free_port()
            self.dir.mkdir(parents=True, exist_ok=True)
            self._write_conf(rest_port, rpc_port)
            state = {"attempt": attempt, "rest_port": rest_port, "rpc_port": rpc_port, "tm": 0,
                     "started": time.time()}
            self.state_file.write_text(json.dumps(state))
            self.local.run_job(self._process("jobmanager", attempt))
            self.local.run_job(self._process("taskmanager", attempt))
        elif not self._alive(tm):
            # The TaskManager alone died: a new one registers with the running JobManager.
            state["tm"] = int(state.get("tm") or 0) + 1
            self.state_file.write_text(json.dumps(state))
            spec = self._process("taskmanager", attempt)
            self.local.run_job(JobSpec(**{**spec.__dict__, "name": f"taskmanager-{attempt}.{state['tm']}"}))
        url = self.rest_url
        if wait:
            self.wait_ready(url)
        return url

    def current_tm(self) -> str:
        state = self.state()
        return f"taskmanager-{state.get('attempt')}" + (f".{state['tm']}" if state.get("tm") else "")

    def wait_ready(self, url: str, timeout: float = START_TIMEOUT) -> None:
        """Until the REST API answers and a TaskManager has registered its slots."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            jm = f"jobmanager-{self.state().get('attempt')}"
            status = self.local.job_status(jm, NAMESPACE)
            if status.state.finished:
                tail = [line.text for line in self.local.job_logs(jm, NAMESPACE)][-5:]
                raise ExecutorUnavailable(f"the Flink JobManager stopped: {status.message}; " + " | ".join(tail))
            try:
                overview = requests.get(url + "/overview", timeout=2).json()
                if overview.get("taskmanagers", 0) >= 1 and overview.get("slots-total", 0) >= 1:
                    return
                last = f"{overview.get('taskmanagers', 0)} task managers"
            except (requests.RequestException, ValueError) as exc:
                last = str(exc)
            time.sleep(0.3)
        raise ExecutorUnavailable(f"the managed Flink session at {url} is not ready after {timeout:.0f}s ({last})")

    def stop(self) -> None:
        """Stop both processes (the console's shutdown, a test's teardown)."""
        self.local.destroy_all()
        self.state_file.unlink(missing_ok=True)

    def close(self) -> None:
        self.local.close()

    def processes(self) -> dict[str, Any]:
        """The supervised processes, for the capability report."""
        state = self.state()
        attempt = state.get("attempt")
        if not attempt:
            return {}
        return {role: self.local.job_status(name, NAMESPACE).state.value
                for role, name in (("jobmanager", f"jobmanager-{attempt}"), ("taskmanager", self.current_tm()))}
