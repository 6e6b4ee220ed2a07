"""A real Kubernetes control plane for the k8s tier (tools/ktestenv).

`k8s_cluster` (session scope) runs `ktestenv up` in a temp dir: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler (each its own process, 127.0.0.1 only) plus kwok,
which plays the kubelet for two fake nodes, so pods really get scheduled, become Running/Ready
and Job pods Succeeded. No database needed.

Missing binaries: skip with one line (`make ktestenv`, needs Go); with DICE_REQUIRE_K8S=1 or
CI=true the fixture fails instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("DICE_KTESTENV_BIN", ROOT / "tools" / "ktestenv" / "bin"))
KTESTENV = BIN_DIR / "ktestenv"
KWOK = BIN_DIR / "kwok"
KWOK_CONFIG = BIN_DIR / "kwok.yaml"

# Nodes with this annotation are managed by kwok (ktestenv passes the same selector).
KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
NODE_NAMES = ("kwok-node-0", "kwok-node-1")

START_TIMEOUT = float(os.environ.get("DICE_K8S_START_TIMEOUT", "120"))
STOP_TIMEOUT = 30.0

T = TypeVar("T")


def _truthy(v: str | None) -> bool:
    return (v or "").strip().lower() in ("1", "true", "yes")


def k8s_required() -> bool:
    """DICE_REQUIRE_K8S=1 makes missing binaries an error, =0 a skip; unset: CI=true decides."""
    explicit = os.environ.get("DICE_REQUIRE_K8S", "").strip()
    if explicit:
        return _truthy(explicit)
    return _truthy(os.environ.get("CI"))


def wait_for(fn: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll fn until it returns something truthy; fail with `what` after timeout seconds.

    Exceptions from fn count as "not yet" (the last one is reported)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = fn()
            if result:
                return result
        except Exception as exc:
            last = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last!r})" if last else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    with contextlib.suppress(OSError):
        if (Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split() or ["?"])[0] == "Z":
            return False
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _rss_kib(pid: int, field: str = "VmRSS") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class K8sCluster:
    """A running ktestenv control plane (+ kwok) and a client for it."""

    # How long `up` may take to stop everything it started in order before it is killed.
    stop_timeout = STOP_TIMEOUT

    def __init__(self, workdir: Path, proc: subprocess.Popen, out_path: Path, err_path: Path):
        self.dir = workdir
        self.proc = proc
        self._out, self._err = out_path, err_path
        self.kubeconfig: str = ""
        self.api_client = None  # kubernetes.client.ApiClient
        self.nodes = list(NODE_NAMES)
        self._child_pids: dict[str, int] = {}

    # ---- state ---------------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.dir / "ktestenv.json"

    def state(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}

    @property
    def server(self) -> str:
        return self.state().get("server", "")

    def pids(self) -> dict[str, int]:
        """PIDs of the processes started for this cluster: `up` and its components."""
        pids = {"ktestenv-up": self.proc.pid}
        for name, pid in (self.state().get("pids") or {}).items():
            if pid:
                self._child_pids[name] = pid
        pids.update(self._child_pids)
        return pids

    def rss_kib(self, field: str = "VmRSS") -> dict[str, int]:
        """Resident memory per process (VmHWM for the peak so far)."""
        return {name: _rss_kib(pid, field) for name, pid in self.pids().items() if _pid_alive(pid)}

    def log_tail(self, lines: int = 30) -> str:
        parts = []
        for p in [self._err, *sorted((self.dir / "logs").glob("*.log"))]:
            with contextlib.suppress(OSError):
                text = p.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {p.name} ---\n" + "\n".join(text))
        return "\n".join(parts)

    # ---- clients ---------------------------------------------------------------------------

    def _connect(self) -> None:
        from kubernetes import client, config

        self.api_client = config.new_client_from_config(config_file=self.kubeconfig)
        self._client_mod = client

    @property
    def core(self):
        return self._client_mod.CoreV1Api(self.api_client)

    @property
    def apps(self):
        return self._client_mod.AppsV1Api(self.api_client)

    @property
    def batch(self):
        return self._client_mod.BatchV1Api(self.api_client)

    @property
    def apiextensions(self):
        return self._client_mod.ApiextensionsV1Api(self.api_client)

    @property
    def custom(self):
        return self._client_mod.CustomObjectsApi(self.api_client)

    # ---- lifecycle -------------------------------------------------------------------------

    def _check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"ktestenv up exited with {self.proc.returncode}\n{self.log_tail()}")

    def wait_started(self, timeout: float) -> None:
        def kubeconfig_printed() -> str | None:
            self._check_alive()
            text = self._out.read_text() if self._out.exists() else ""
            return text.strip().splitlines()[0] if text.strip() else None

        self.kubeconfig = wait_for(kubeconfig_printed, timeout, "ktestenv up to print the kubeconfig path")
        self.pids()
        self._connect()

    def restart_apiserver(self, timeout: float = 90.0) -> None:
        """Restart kube-apiserver against the same etcd; return once /readyz answers again."""
        before = int(self.state().get("apiserver_restarts", 0))
        old_pid = self.pids().get("kube-apiserver")
        os.kill(self.proc.pid, signal.SIGUSR1)

        def restarted() -> bool:
            self._check_alive()
            st = self.state()
            return int(st.get("apiserver_restarts", 0)) > before and bool(st.get("ready"))

        wait_for(restarted, timeout, "kube-apiserver restart")
        new_pid = self.pids().get("kube-apiserver")
        assert new_pid and new_pid != old_pid, (old_pid, new_pid)

    def stop(self) -> None:
        """Stop everything started for this cluster, by PID: `up` (which stops its children in
        order), then SIGKILL any child still alive."""
        pids = self.pids()
        if self.api_client is not None:
            with contextlib.suppress(Exception):
                self.api_client.close()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for name, pid in pids.items():
            if name == "ktestenv-up":
                continue
            # Only a process that is still one of ours (PIDs get reused).
            if _pid_alive(pid) and (str(BIN_DIR) in _cmdline(pid) or str(self.dir) in _cmdline(pid)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(
            _pid_alive(p) for n, p in pids.items() if n != "ktestenv-up"
        ):
            time.sleep(0.05)


def _node_body(name: str) -> dict[str, Any]:
    resources = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_ANNOTATION[0]: KWOK_ANNOTATION[1], "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/agent": "",
            },
        },
        "spec": {},
        "status": {
            "allocatable": resources,
            "capacity": resources,
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "osImage": "kwok",
                "kernelVersion": "fake",
                "kubeletVersion": "fake",
                "kubeProxyVersion": "fake",
                "containerRuntimeVersion": "kwok",
                "bootID": "",
                "machineID": "",
                "systemUUID": "",
            },
            "phase": "Running",
        },
    }


def _node_ready(node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))


def launch_up(workdir: Path, start_timeout: float) -> K8sCluster:
    """Start `ktestenv up` (control plane + kwok) in workdir; its output goes to files there.
    Shared by the fixture and the benchmarks, which wait for it the same way."""
    out_path, err_path = workdir / "up.stdout", workdir / "up.stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            [str(KTESTENV), "up", "--dir", str(workdir / "cluster"),
             "--kwok-bin", str(KWOK), "--kwok-config", str(KWOK_CONFIG),
             "--timeout", f"{start_timeout:.0f}s", "--exit-with-parent"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
        )
    return K8sCluster(workdir / "cluster", proc, out_path, err_path)


@pytest.fixture(scope="session")
def k8s_cluster() -> Iterator[K8sCluster]:
    missing = [str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)
               for p in (KTESTENV, KWOK, KWOK_CONFIG) if not p.exists()]
    if missing:
        reason = f"{', '.join(missing)} not built: run `make ktestenv` (needs Go)"
        if k8s_required():
            pytest.fail(f"k8s tier required (DICE_REQUIRE_K8S=1 or CI=true) but {reason}", pytrace=False)
        pytest.skip(f"k8s tier skipped: {reason}")

    workdir = Path(tempfile.mkdtemp(prefix="ktestenv-"))
    t0 = time.monotonic()
    cluster = launch_up(workdir, START_TIMEOUT)
    keep = _truthy(os.environ.get("DICE_K8S_KEEP_DIR"))
    try:
        try:
            cluster.wait_started(START_TIMEOUT)
            core = cluster.core
            for name in NODE_NAMES:
                core.create_node(_node_body(name))
            wait_for(lambda: all(_node_ready(core.read_node(n)) for n in NODE_NAMES), 60,
                     "kwok to mark the fake nodes Ready")
            # Pods need the namespace's default ServiceAccount (kube-controller-manager).
            wait_for(lambda: core.read_namespaced_service_account("default", "default"), 60,
                     "the default ServiceAccount")
        except Exception as exc:
            pytest.fail(f"k8s_cluster failed to start: {exc}\n{cluster.log_tail()}", pytrace=False)
        cluster.startup_seconds = time.monotonic() - t0
        yield cluster
    finally:
        rss = cluster.rss_kib("VmHWM")
        from scheduler.kubernetes.informer import close_all

        close_all()  # the status caches' watches end with the cluster, not retry against nothing
        cluster.stop()
        if rss:
            print(f"\nk8s_cluster: started in {getattr(cluster, 'startup_seconds', float('nan')):.1f}s; "
                  f"peak RSS (VmHWM) MiB: "
                  + ", ".join(f"{k}={v / 1024:.0f}" for k, v in rss.items())
                  + f"; sum={sum(rss.values()) / 1024:.0f}")
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def k8s_namespace(k8s_cluster: K8sCluster) -> Iterator[str]:
    """A fresh namespace for one test (deleted afterwards, without waiting)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    k8s_cluster.core.create_namespace({"metadata": {"name": name}})
    wait_for(lambda: k8s_cluster.core.read_namespaced_service_account("default", name), 60,
             f"the default ServiceAccount in {name}")
    yield name
    with contextlib.suppress(Exception):
        k8s_cluster.core.delete_namespace(name)
