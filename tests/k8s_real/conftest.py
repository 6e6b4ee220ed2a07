"""A real Kubernetes node for the k8s_real tier: pods whose containers really run.

`k8s_node` (session scope) runs `ktestenv up --real-node` in a temp dir: the same control plane
as `k8s_cluster` (tests/k8s/conftest.py), plus one node on this machine: Debian's containerd and
runc, the CNI bridge plugin on a private bridge, a kubelet and kube-proxy built from the same
Kubernetes module as the control plane, and CoreDNS behind the usual kube-dns Service
(10.96.0.10). Images come from tools/ktestenv/bin/images (built locally by `make ktestenv`):
`busybox:stable`, `python:3.11-slim` and the pause image. The node is `ktestenv-node`; its
address is the bridge's gateway, so Services (ClusterIP, NodePort) answer from this machine.
Beside it runs a registry (Debian's docker-registry on the node's address, `node_registry`), which
the node's containerd pulls from over plain HTTP and pods cannot reach.

The contract is `k8s_cluster`'s (a K8sCluster: kubeconfig, core/apps/batch clients, nodes,
pids, rss_kib, stop). Missing binaries, images or Debian packages, or not root: skip with one
line naming what to install; with DICE_REQUIRE_K8S=1 or CI=true the fixture fails instead.
On teardown `up` removes the pods, containers, containerd, shims, bridge and mounts; the
fixture then checks that nothing of the node is left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.k8s.conftest import (
    BIN_DIR,
    KTESTENV,
    ROOT,
    K8sCluster,
    _pid_alive,
    _truthy,
    k8s_required,
    wait_for,
)

NODE_NAME = "ktestenv-node"
NODE_RUN_DIR = Path("/run/ktestenv-node")
START_TIMEOUT = float(os.environ.get("DICE_K8S_NODE_START_TIMEOUT", "180"))

# What the real node needs, with where it comes from.
NODE_BINARIES = {
    "kubelet": "make ktestenv", "kube-proxy": "make ktestenv", "coredns": "make ktestenv",
    "images/pause.tar": "make ktestenv", "images/busybox.tar": "make ktestenv (needs busybox-static)",
    "images/python.tar": "make ktestenv (needs mmdebstrap)", "images/redis.tar": "make ktestenv (needs mmdebstrap)",
    "images/git.tar": "make ktestenv (needs mmdebstrap)",
}
DEBIAN = {  # command: Debian package
    "containerd": "containerd", "ctr": "containerd", "runc": "runc", "iptables": "iptables",
    "conntrack": "conntrack", "ip": "iproute2", "docker-registry": "docker-registry",
}
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")


def missing_for_node() -> list[str]:
    missing = [f"{p} ({how})" for p, how in NODE_BINARIES.items() if not (BIN_DIR / p).exists()]
    if not KTESTENV.exists():
        missing.insert(0, "ktestenv (make ktestenv)")
    packages = sorted({pkg for cmd, pkg in DEBIAN.items() if not shutil.which(cmd)})
    if any(not Path("/usr/lib/cni", p).exists() for p in CNI_PLUGINS):
        packages.append("containernetworking-plugins")
    if packages:
        missing.append("Debian packages: apt-get install " + " ".join(packages))
    if os.geteuid() != 0:
        missing.append("root (containerd, the bridge and iptables need it)")
    return missing


def launch_real_node(workdir: Path, start_timeout: float) -> K8sCluster:
    out_path, err_path = workdir / "up.stdout", workdir / "up.stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            [str(KTESTENV), "up", "--dir", str(workdir / "cluster"), "--real-node",
             "--timeout", f"{start_timeout:.0f}s", "--exit-with-parent"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
        )
    cluster = K8sCluster(workdir / "cluster", proc, out_path, err_path)
    cluster.nodes = [NODE_NAME]
    return cluster


def leftovers(cluster_dir: Path) -> list[str]:
    """What of the node is still on this machine: processes, mounts, bridges, iptables rules."""
    found = []
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmd = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if str(NODE_RUN_DIR) in cmd or str(cluster_dir) in cmd:
                found.append(f"process {pid_dir.name}: {cmd[:120]}")
    mounts = Path("/proc/self/mountinfo").read_text()
    for line in mounts.splitlines():
        mp = line.split()[4]
        if mp.startswith((str(NODE_RUN_DIR), str(cluster_dir))):
            found.append(f"mount {mp}")
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    found += [f"link {ln.split(':')[1].strip()}" for ln in links.splitlines() if "ktenv" in ln]
    for table in ("nat", "filter"):
        rules = subprocess.run(["iptables", "-w", "-t", table, "-S"], capture_output=True, text=True).stdout
        found += [f"iptables -t {table}: {r}" for r in rules.splitlines() if "KUBE-" in r or "KTESTENV" in r][:3]
    return found


@pytest.fixture(scope="session")
def k8s_node() -> Iterator[K8sCluster]:
    missing = missing_for_node()
    if missing:
        reason = "; ".join(missing)
        if k8s_required():
            pytest.fail(f"k8s_real tier required (DICE_REQUIRE_K8S=1 or CI=true) but missing: {reason}",
                        pytrace=False)
        pytest.skip(f"k8s_real tier skipped: missing {reason}")

    workdir = Path(tempfile.mkdtemp(prefix="ktestenv-node-"))
    t0 = time.monotonic()
    cluster = launch_real_node(workdir, START_TIMEOUT)
    # A real node stops in order within its own budgets (pods 20 s, kubelet 15 s, sandboxes 30 s,
    # kube-proxy 10 s and its rules, CoreDNS 5 s, containerd 15 s): killing `up` before it is done
    # would leave mounts, links and rules behind, which is what the teardown check fails on.
    cluster.stop_timeout = 180.0
    keep = _truthy(os.environ.get("DICE_K8S_KEEP_DIR"))
    try:
        try:
            cluster.wait_started(START_TIMEOUT + 30)
            wait_for(lambda: cluster.core.read_namespaced_service_account("default", "default"), 60,
                     "the default ServiceAccount")
        except Exception as exc:
            pytest.fail(f"k8s_node failed to start: {exc}\n{cluster.log_tail()}", pytrace=False)
        cluster.startup_seconds = time.monotonic() - t0
        yield cluster
    finally:
        rss = cluster.rss_kib("VmHWM")
        pids = cluster.pids()
        cluster.stop()
        if rss:
            print(f"\nk8s_node: started in {getattr(cluster, 'startup_seconds', float('nan')):.1f}s "
                  f"(node Ready {cluster.state().get('node_ready_seconds', 0):.1f}s after the control plane); "
                  "peak RSS (VmHWM) MiB: " + ", ".join(f"{k}={v / 1024:.0f}" for k, v in rss.items())
                  + f"; sum={sum(rss.values()) / 1024:.0f}")
        left = leftovers(cluster.dir) + [f"pid {p} ({n})" for n, p in pids.items() if _pid_alive(p)]
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        if left:
            pytest.fail("the real node left things behind:\n" + "\n".join(left), pytrace=False)


CONTAINERD_SOCKET = NODE_RUN_DIR / "containerd.sock"


def build_image(out: Path, name: str, *args: str) -> Path:
    """An OCI image archive made by `ktestenv image` (local files, no registry)."""
    subprocess.run([str(KTESTENV), "image", "--name", name, "--out", str(out), *args], check=True,
                   capture_output=True)
    return out


def node_import(archive: Path) -> None:
    """Import an image archive into the real node's containerd (namespace k8s.io)."""
    subprocess.run(["ctr", "--address", str(CONTAINERD_SOCKET), "-n", "k8s.io", "images", "import", str(archive)],
                   check=True, capture_output=True)


def node_tag(source: str, target: str) -> None:
    subprocess.run(["ctr", "--address", str(CONTAINERD_SOCKET), "-n", "k8s.io", "images", "tag", "--force",
                    source, target], check=True, capture_output=True)


@pytest.fixture
def node_namespace(k8s_node: K8sCluster) -> Iterator[str]:
    """A fresh namespace for one test; deleted afterwards (its pods stop on the real node)."""
    name = f"r-{uuid.uuid4().hex[:10]}"
    k8s_node.core.create_namespace({"metadata": {"name": name}})
    wait_for(lambda: k8s_node.core.read_namespaced_service_account("default", name), 60,
             f"the default ServiceAccount in {name}")
    yield name
    with contextlib.suppress(Exception):
        k8s_node.core.delete_namespace(name)


class NodeReachableConsole:
    """The console (ASGI, HTTP + WebSockets) on the node's own address, which the pods reach:
    the agents restore and store the run's context there, checkouts clone hosted repositories."""

    def __init__(self, host: str):
        import socket

        from tests.browser.live_asgi import AsgiServer

        self.server = AsgiServer()
        self.server.socket.close()
        self.server.socket = socket.socket()
        self.server.socket.bind((host, 0))
        self.server.port = self.server.socket.getsockname()[1]
        self.server.url = f"http://{host}:{self.server.port}"


@pytest.fixture
def node_address(k8s_node: K8sCluster) -> str:
    node = k8s_node.core.read_node(NODE_NAME)
    return next(a.address for a in node.status.addresses if a.type == "InternalIP")


@pytest.fixture
def node_registry(k8s_node: K8sCluster) -> str:
    """The URL of the registry `up --real-node` runs beside the node (Debian's docker-registry on
    the node's address), which the node's containerd pulls from over plain HTTP."""
    address = k8s_node.state().get("registry")
    if not address:
        pytest.fail("the real node runs without its registry (ktestenv.json has no 'registry'): "
                    "install docker-registry and rebuild with make ktestenv", pytrace=False)
    return f"http://{address}"


__all__ = ["ROOT", "K8sCluster", "NodeReachableConsole", "build_image", "k8s_node", "node_address", "node_import",
           "node_namespace", "node_registry", "node_tag", "wait_for"]


def bind_dev_to_node(tenant, k8s_node: K8sCluster, **register) -> object:
    """A cluster registered for the real node under a fresh name (`register`: more of
    register_cluster's settings) and made the tenant's DEV workspace's cluster."""
    from apps.clusters import services as clusters
    from apps.projects import services as projects

    cluster = clusters.register_cluster(tenant.owner, name=f"real-{uuid.uuid4().hex[:6]}",
                                        kubeconfig=Path(k8s_node.kubeconfig).read_text(), **register)
    projects.update_workspace(tenant.owner, tenant.project.workspaces.get(kind="DEV"), cluster=cluster)
    return cluster


def node_volume(k8s_node: K8sCluster, directory: Path, prefix: str) -> None:
    """A hostPath PersistentVolume in `directory` for an addon's claim to bind to (the test node
    has no provisioner)."""
    directory.mkdir()
    k8s_node.core.create_persistent_volume({
        "metadata": {"name": f"{prefix}-{uuid.uuid4().hex[:8]}"},
        "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Delete", "hostPath": {"path": str(directory)}}})


def delete_runtimes_on(owner, cluster) -> None:
    """Delete every runtime on `cluster` (a test's cleanup); a failure is printed, not raised:
    the namespaces go with the node anyway."""
    from apps.deploy import deployments
    from apps.deploy.models import Runtime

    for runtime in Runtime.objects.filter(cluster=cluster):
        try:
            deployments.delete_runtime(owner, runtime)
        except Exception as exc:
            print(f"cleanup of runtime {runtime.pk}: {exc}")
