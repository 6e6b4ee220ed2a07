"""Bench: a generated 200-service dice.yml applied through the Kubernetes driver to a real control
plane (tools/ktestenv + kwok fake nodes): render, server-side apply, and the time until every
Deployment is available (the driver's watch-based wait_until), then destroy. Prints figures.

    .venv/bin/python bench/bench_k8s_apply.py [--services 200] [--replicas 1] [--nodes 4] [--kubectl PATH]

Figures (issue 25, this 2-core machine shared by six engineers, so absolute times are loaded;
before = main at 2a2b051, after = the perf branch, same day, runs one after the other):

    services                       50            100           200
    apply        before         13.88 s       24.14 s      137.66 s
                 after           7.49 s        5.94 s        6.70 s
    re-apply     before          5.55 s       15.72 s      (not reached: the bench's own watch
                 after           1.72 s        2.70 s        7.58 s   of 43 KB Deployments fell behind)
    status()     before          831 ms       1564 ms      -
    (settled)    after             2 ms          4 ms         47 ms
    kube-apiserver peak RSS    443 -> 371    758 -> 417    - -> 497 MiB

This session (issue 25, 2026-12-07, 200 services, load 10-30 from six other engineers): main (one
server-side apply after another, every object every time) against the perf branch (objects whose
digest and managers show them unchanged are not sent; eight applies in flight; the per-kind
LISTs shared with the prune and made in parallel), and kubectl applying the branch's objects:

    200 services                main          perf       kubectl apply --server-side (same objects)
    apply                16.16, 16.56 s      7.66 s     10.10 s   -> ratio 0.76
    re-apply, unchanged  10.73, 12.30 s      0.86 s     15.18 s   -> ratio 0.11
    settled status()        85, 103 ms        42 ms

Next session (issue 25, 2026-12-07 03:35-03:51, load 20-32 from the other engineers, main at
257724b against this branch, runs alternated, each side twice):

    200 services                 main (before)       branch (after)
    apply                         8.20, 8.02 s       15.35, 11.42 s   (wall: at this load, noise)
      CPU: this process           0.91, 1.02 s        0.72, 0.66 s
      CPU: control plane          4.72, 4.82 s        6.97, 5.68 s   (more of the controllers'
                                                                      cascade falls in a longer window)
    status() evaluations while     248 x 101 ms        75 x 79 ms     (the cache computes once per
      waiting for availability     392 x  42 ms       120 x 54 ms     change; waiters pace themselves)
    settled status()                47, 44 ms           0, 0 ms      (computed once per change)
    re-apply, unchanged           1.49, 1.14 s        1.83, 2.75 s
    requests while waiting        WATCH 6, 7          LIST 6, GET 1, WATCH 12, 14 (LIST: the cache's
                                                      first lists, as it is joined after the applies;
                                                      WATCH counted the bench's own 5-s watch then)
    render (CPU, no cluster)       220 ms              40 ms

Then one cluster and one process, main's driver.py loaded beside the branch's, applies into fresh
namespaces alternated (3 each, 20 s apart; load 57-75, so the wall times, 5.5-210 s, say nothing):
this process's CPU per apply main 1.41/1.56/1.64 s, branch 1.28/0.90/0.61 s. Whether 200 services
apply in under 5 s is not shown on this machine: the best branch run was 5.48 s at load 57 (and
4.94/5.58 s in two runs of a probe at load ~16), main's 8.02 s at load 27.

When the load fell (04:05-04:10, load 13-29 at the start of each run), main once between two runs
of the branch, each with kubectl in the same run:

    200 services                 main (before)       branch (after)
    apply                           6.66 s           3.63, 3.68 s    (goal < 5 s)
      CPU: this process             1.02 s           0.58, 0.62 s
      CPU: control plane            4.34 s           3.86, 3.63 s
    kubectl apply, same objects     7.47 s           5.62, 12.07 s
    ratio to kubectl                0.89             0.65, 0.30      (goal <= 1.0)
    re-apply, unchanged             1.19 s           0.26, 0.42 s    (goal < 2 s)
    status() while waiting      608 x 32 ms = 27.3 s  461 x 12 ms = 8.0 s, 334 x 17 ms = 9.3 s
    settled status()                  39 ms           0, 0 ms        (goal < 100 ms)
    requests while waiting          WATCH 8          GET 1, LIST 6 / 7, WATCH 7 / 6 (the cache's
                                                     first lists, one kind listed again once)

kubectl: `cp -r tools/ktestenv /tmp/k && cd /tmp/k && GOFLAGS=-mod=mod go build -o kubectl
k8s.io/kubernetes/cmd/kubectl` (the module graph of tools/ktestenv; -mod=mod adds the go.sum
entries of kustomize, which ktestenv itself does not build, in the copy only).

Before, every container carried 4n discovery variables (n^2 in total); after, one ConfigMap per
runtime read through envFrom (item 1), and status() answers from the watch-fed cache (item 2).

Needs tools/ktestenv/bin (`make ktestenv`). Everything it starts (ktestenv up, etcd, apiserver,
controller-manager, scheduler, kwok) is stopped on exit, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The k8s tier's cluster class and node body (tests/k8s/conftest.py), reused as they are.
from tests.k8s.conftest import (  # noqa: E402
    KTESTENV,
    KWOK,
    KWOK_CONFIG,
    K8sCluster,
    _node_body,
    _node_ready,
    launch_up,
    wait_for,
)


def _raise_on_sigterm() -> None:
    """SIGTERM (e.g. `timeout`) unwinds like Ctrl-C, so the cluster is stopped in `finally`."""

    def handler(signum, frame):
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, handler)


@contextlib.contextmanager
def ktestenv(nodes: int = 2, cpu: str = "16", memory: str = "64Gi", pods: str = "110",
             start_timeout: float = 120.0, quiet: bool = False) -> Iterator[K8sCluster]:
    """A fresh ktestenv control plane + kwok with `nodes` fake Ready nodes; stopped (every process
    it started, by PID) and its directory removed on exit. `cluster.startup_seconds` and
    `cluster.peak_rss` (VmHWM KiB per process, read just before the stop) are filled in."""
    missing = [str(p) for p in (KTESTENV, KWOK, KWOK_CONFIG) if not p.exists()]
    if missing:
        raise SystemExit(f"{', '.join(missing)} not built: run `make ktestenv` (needs Go)")
    _raise_on_sigterm()
    workdir = Path(tempfile.mkdtemp(prefix="bench-ktestenv-"))
    t0 = time.monotonic()
    cluster = launch_up(workdir, start_timeout)
    cluster.peak_rss = {}
    try:
        try:
            cluster.wait_started(start_timeout)
            core = cluster.core
            names = [f"kwok-node-{i}" for i in range(nodes)]
            resources = {"cpu": cpu, "memory": memory, "pods": pods, "ephemeral-storage": "1Ti"}
            for name in names:
                body = copy.deepcopy(_node_body(name))
                body["status"]["allocatable"] = dict(resources)
                body["status"]["capacity"] = dict(resources)
                core.create_node(body)
            cluster.nodes = names
            wait_for(lambda: all(_node_ready(core.read_node(n)) for n in names), 60,
                     "kwok to mark the fake nodes Ready")
            wait_for(lambda: core.read_namespaced_service_account("default", "default"), 60,
                     "the default ServiceAccount")
        except Exception as exc:
            raise SystemExit(f"ktestenv failed to start: {exc}\n{cluster.log_tail()}") from None
        cluster.startup_seconds = time.monotonic() - t0
        if not quiet:
            print(f"cluster: up with {nodes} kwok nodes in {cluster.startup_seconds:.1f}s "
                  f"({cluster.server})", flush=True)
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            cluster.peak_rss = cluster.rss_kib("VmHWM")
        cluster.stop()
        alive = [f"{n}={p}" for n, p in cluster.pids().items() if _alive(p)]
        if alive:
            print(f"WARNING: still alive after stop: {', '.join(alive)}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)


def _alive(pid: int) -> bool:
    from tests.k8s.conftest import _pid_alive

    return _pid_alive(pid)


def cluster_cpu(cluster: K8sCluster, since: dict[str, float] | None = None) -> dict[str, float]:
    """CPU seconds (user + system) each control-plane process has used, less `since`: on a
    shared machine the wall time of an apply depends on everyone's load, the work it caused
    much less."""
    out = {}
    for name, pid in cluster.pids().items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") - (since or {}).get(name, 0.0)
    return out


def cpu_line(cpu: dict[str, float]) -> str:
    parts = ", ".join(f"{k}={v:.2f}" for k, v in sorted(cpu.items()) if k != "ktestenv-up")
    return f"{parts}; sum={sum(cpu.values()):.2f} s"


def rss_line(rss: dict[str, int]) -> str:
    if not rss:
        return "n/a"
    parts = ", ".join(f"{k}={v / 1024:.0f}" for k, v in sorted(rss.items()) if k != "ktestenv-up")
    return f"{parts}; sum={sum(rss.values()) / 1024:.0f} MiB"


def bench_spec(services: int, replicas: int, addon: bool) -> str:
    """bench_render's generated spec (bench_diceyml.generated) with the replica count fixed and,
    unless `addon`, without its mysql addon (its StatefulSet needs a volume kwok cannot provide)."""
    from bench.bench_diceyml import generated

    text = generated(services).replace("${replicas:2}", str(replicas))
    if not addon:
        text = text.split("addons:\n", 1)[0]
    return text


class DeploymentWatch:
    """Ground truth, independent of the driver: watches the namespace's Deployments and records
    when each first became available (updated = ready = available = desired, generation observed)."""

    def __init__(self, apps_api, namespace: str):
        self.apps_api, self.namespace = apps_api, namespace
        self.available: dict[str, float] = {}
        self.desired: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-deploy-watch")

    def start(self) -> DeploymentWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            w = watch.Watch()
            try:
                for ev in w.stream(self.apps_api.list_namespaced_deployment, self.namespace, timeout_seconds=5):
                    d = ev["object"]
                    now = time.perf_counter()
                    name, want = d.metadata.name, d.spec.replicas or 0
                    st = d.status
                    self.desired[name] = want
                    done = ((st.observed_generation or 0) >= (d.metadata.generation or 0)
                            and (st.updated_replicas or 0) >= want and (st.ready_replicas or 0) >= want
                            and (st.available_replicas or 0) >= want)
                    if done and name not in self.available:
                        self.available[name] = now
                    if self._stop.is_set():
                        w.stop()
                        return
            except Exception:
                self._stop.wait(0.2)


class RequestCount:
    """Every HTTP request the driver makes in this process (all its API clients: its own, the
    watch-fed cache's; not the bench's DeploymentWatch) between start() and stop(), by kind:
    LIST, WATCH, other GET, writes. A cache joined by the apply lists each kind once here, then
    only watches: a count that does not grow with the wait is what item 2 asks."""

    def __init__(self):
        self.counts: dict[str, int] = {}
        self._real = None

    def start(self) -> RequestCount:
        from kubernetes.client import rest

        real = self._real = rest.RESTClientObject.request
        counts = self.counts

        def request(client, method, url, *args, **kwargs):
            if threading.current_thread().name.startswith("bench-"):  # the bench's own watch
                return real(client, method, url, *args, **kwargs)
            path, _, query = url.partition("?")
            if method != "GET":
                kind = method
            elif "watch=true" in query.lower():
                kind = "WATCH"
            else:  # a LIST names a collection: .../namespaces/<ns>/<plural>, or a cluster-wide plural
                kind = "LIST" if _is_collection(path.split("/")) else "GET"
            counts[kind] = counts.get(kind, 0) + 1
            return real(client, method, url, *args, **kwargs)

        rest.RESTClientObject.request = request
        return self

    def stop(self) -> None:
        from kubernetes.client import rest

        if self._real is not None:
            rest.RESTClientObject.request = self._real
            self._real = None

    def summary(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())) or "none"


def _is_collection(parts: list[str]) -> bool:
    """Whether an API path names a collection (/api/v1/namespaces/ns/pods, /apis/g/v/namespaces/ns/x,
    /api/v1/nodes) rather than one object."""
    start = next((i for i, p in enumerate(parts) if p in ("api", "apis")), len(parts))
    tail = parts[start + (2 if parts[start:start + 1] == ["api"] else 3):]  # after /api/v1, /apis/<g>/<v>
    if tail[:1] == ["namespaces"] and len(tail) >= 3:
        tail = tail[2:]
    return len(tail) == 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--replicas", type=int, default=1, help="per service (default 1: 200 pods)")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--node-cpu", default="64")
    parser.add_argument("--node-memory", default="256Gi")
    parser.add_argument("--node-pods", default="250")
    parser.add_argument("--addon", action="store_true", help="keep the spec's mysql addon (stays Pending under kwok)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for availability")
    parser.add_argument("--kubectl", default="", help="a kubectl binary: also time `kubectl apply --server-side` "
                        "of the same rendered objects into a fresh namespace, and print the ratio")
    args = parser.parse_args()

    from kubernetes import client as k8s

    from diceyml import parse_dice_yml
    from scheduler import registry
    from scheduler.base import ClusterRef, Health, RuntimeRef, ServiceGroup
    from scheduler.kubernetes.addons import generate_addon_secrets

    spec = parse_dice_yml(bench_spec(args.services, args.replicas, args.addon), workspace="DEV")
    runtime = RuntimeRef("acme", "bench", "app", "DEV", "main")
    group = ServiceGroup(runtime, spec, release="v1", addon_secrets=generate_addon_secrets(spec))
    rows: list[tuple[str, str]] = []

    def row(key: str, value: str) -> None:
        rows.append((key, value))
        print(f"  {key}: {value}", flush=True)

    with ktestenv(args.nodes, args.node_cpu, args.node_memory, args.node_pods) as cluster:
        row("cluster start (ktestenv up + nodes Ready)", f"{cluster.startup_seconds:.1f} s")
        ref = ClusterRef("bench", "kubernetes", config={"kubeconfig": cluster.kubeconfig})
        executor = registry.executor_for(ref)
        apps_api = k8s.AppsV1Api(cluster.api_client)

        start = time.perf_counter()
        operators = executor.operators()
        row("operators() (list CRDs)", f"{(time.perf_counter() - start) * 1000:.0f} ms")
        renders = []
        for _ in range(5):
            start = time.perf_counter()
            manifests = executor.render(group, operators=operators)
            renders.append(time.perf_counter() - start)
        kinds: dict[str, int] = {}
        for m in manifests:
            kinds[m["kind"]] = kinds.get(m["kind"], 0) + 1
        row(f"render {args.services} services ({len(manifests)} objects: "
            + ", ".join(f"{v} {k}" for k, v in kinds.items()) + ")",
            f"median {statistics.median(renders) * 1000:.0f} ms")

        truth = DeploymentWatch(apps_api, runtime.namespace)
        cpu0, ours0 = cluster_cpu(cluster), time.process_time()
        t_apply = time.perf_counter()
        executor.apply(group)
        apply_s = time.perf_counter() - t_apply
        ours, cpu = time.process_time() - ours0, cluster_cpu(cluster, since=cpu0)
        truth.start()
        row("apply (operators + render + server-side apply of every object + prune)",
            f"{apply_s:.2f} s ({apply_s / len(manifests) * 1000:.1f} ms/object)")
        row("  CPU during the apply: this process, control plane", f"{ours:.2f} s, {cpu_line(cpu)}")

        calls, status_times = [0], []
        real_status = executor.status

        def timed_status(rt):
            start = time.perf_counter()
            try:
                return real_status(rt)
            finally:
                status_times.append(time.perf_counter() - start)

        executor.status = timed_status  # count the driver's re-evaluations inside wait_until

        def all_available(st) -> bool:
            calls[0] += 1
            svcs = st.services
            return len(svcs) == args.services and all(s.health == Health.HEALTHY for s in svcs.values())

        requests = RequestCount().start()  # what this process asks the API server while it waits
        try:
            final = executor.wait_until(runtime, all_available, args.timeout)
            waited = time.perf_counter() - t_apply
            row(f"apply start -> all {args.services} Deployments available (driver wait_until)", f"{waited:.2f} s")
            row("  after apply returned", f"{waited - apply_s:.2f} s")
            row("  group health", f"{final.health} {final.reason}".strip())
        except TimeoutError as exc:
            waited = float("nan")
            row("wait_until", f"TIMED OUT: {exc}")
        finally:
            executor.status = real_status
            requests.stop()
        row("  requests made while waiting (item 2: no list loop)", requests.summary())
        wait_for(lambda: len(truth.available) >= args.services, 30, "the bench's own watch to catch up")
        truth.stop()
        last = max(truth.available.values())
        row("  same, seen by a plain Deployment watch", f"{last - t_apply:.2f} s "
            f"(driver noticed {waited - (last - t_apply):.2f} s later)")
        if status_times:
            row("  status() evaluations inside wait_until", f"{calls[0]} (each median "
                f"{statistics.median(status_times) * 1000:.0f} ms, max {max(status_times) * 1000:.0f} ms; "
                f"{sum(status_times):.1f} s in total)")
        samples = []
        for _ in range(3):
            start = time.perf_counter()
            st = executor.status(runtime)
            samples.append(time.perf_counter() - start)
        pods = sum(len(s.replicas) for s in st.services.values())
        row(f"status() of the settled runtime ({pods} pods)", f"median {statistics.median(samples) * 1000:.0f} ms")

        start = time.perf_counter()
        executor.apply(group)
        row("re-apply, nothing changed", f"{time.perf_counter() - start:.2f} s")

        rss = cluster.rss_kib("VmHWM")
        ours_apply = apply_s
        start = time.perf_counter()
        executor.apply(group)
        ours_reapply = time.perf_counter() - start
        objects = executor._to_apply(group, operators)  # exactly what our apply sends
        start = time.perf_counter()
        executor.destroy(runtime)
        core = cluster.core

        def namespace_gone(name: str = runtime.namespace) -> bool:
            try:
                core.read_namespace(name)
            except k8s.ApiException as exc:
                return exc.status == 404
            return False

        try:
            wait_for(namespace_gone, 120, "the namespace to be deleted", interval=0.25)
            row("destroy -> namespace gone", f"{time.perf_counter() - start:.2f} s")
        except TimeoutError:
            row("destroy -> namespace gone", "not within 120 s")
        if args.kubectl:
            # The same objects, applied by kubectl (server-side, one request per object, in file
            # order) into the same, now empty, namespace: the ratio compares the clients alone.
            import subprocess

            import yaml

            manifest = Path(tempfile.mkdtemp(prefix="dice-bench-kubectl-")) / "objects.yaml"
            manifest.write_text(yaml.safe_dump_all(objects, sort_keys=False))
            argv = [args.kubectl, "--kubeconfig", cluster.kubeconfig, "apply", "--server-side", "--force-conflicts",
                    "--field-manager", "dice-console", "-f", str(manifest)]
            times = []
            kubectl_cpu = []
            for _ in range(2):
                cpu0 = cluster_cpu(cluster)
                start = time.perf_counter()
                done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
                times.append(time.perf_counter() - start)
                kubectl_cpu.append(cluster_cpu(cluster, since=cpu0))
                if done.returncode != 0:
                    row("kubectl apply", f"FAILED: {done.stderr.strip()[-300:]}")
                    break
            else:
                row(f"kubectl apply --server-side, same {len(objects)} objects", f"{times[0]:.2f} s")
                row("  control plane CPU during it", cpu_line(kubectl_cpu[0]))
                row("kubectl re-apply, nothing changed", f"{times[1]:.2f} s")
                row("ratio ours / kubectl: apply, re-apply",
                    f"{ours_apply / times[0]:.2f}, {ours_reapply / times[1]:.2f} (goal <= 1.0)")
            subprocess.run([args.kubectl, "--kubeconfig", cluster.kubeconfig, "delete", "namespace",
                            runtime.namespace, "--wait=false"], capture_output=True, timeout=120)
    row("peak RSS (VmHWM) MiB", rss_line(cluster.peak_rss or rss))

    print()
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
