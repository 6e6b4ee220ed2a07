"""Bench: from a Kubernetes Deployment's status change to the console showing it, through the
console's own code (Django settings, the apps.deploy services, the REST API, the rollout task and
the /ws/runtimes/<id>/ consumer) against a real control plane (tools/ktestenv + kwok). Prints
median and p95; not pass/fail.

    .venv/bin/python bench/bench_status_latency.py [--changes 20] [--deploys 20] [--poll SECONDS]

Two paths, each timed from the user's action (t0):
  scale   POST /api/runtimes/<id>/scale/, then GET /api/runtimes/<id>/ back to back (the live
          status the API and the runtime page compute per request). (a) the Deployment reports the
          new ready count (seen by a watch of our own), (b) the API first shows it.
  deploy  a release with another replica count, followed by the rollout task (run_deployment) as
          a worker runs it; (a) the Deployment is rolled out and ready, (b) the first message
          pushed to the runtime's group (received by RuntimeProgressConsumer over a WebSocket
          communicator) that shows it, and the `healthy` transition message.

Uses a temporary SQLite database (DICE_DATA_DIR=<tmp>), or DATABASE_URL when set (it then writes
rows there). Stops the cluster it starts on exit, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DICE_ORG_CREATION", "anyone")  # the bench user makes its own organizations

from bench.bench_k8s_apply import ktestenv, rss_line  # noqa: E402

SPEC = """
version: "2.0"
services:
  web:
    image: registry.example/web:1
    ports: [8080]
    deployments: {{replicas: {replicas}}}
    resources: {{cpu: 0.1, mem: 64}}
  api:
    image: registry.example/api:1
    ports: [9000]
    resources: {{cpu: 0.1, mem: 64}}
"""


def setup_django(data_dir: str) -> None:
    os.environ["DICE_DATA_DIR"] = data_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dice_console.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: list[float]) -> str:
    ms = [v * 1000 for v in values if v == v]
    if not ms:
        return "no samples"
    return (f"median {statistics.median(ms):7.0f} ms   p95 {pct(ms, 0.95):7.0f} ms   "
            f"max {max(ms):7.0f} ms   (n={len(ms)})")


class DeploymentLog:
    """Every status of one Deployment, with the time this process saw it (a watch of our own)."""

    def __init__(self, apps_api, namespace: str, name: str):
        self.apps_api, self.namespace, self.name = apps_api, namespace, name
        self.seen: list[tuple[float, dict]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True, name="bench-deployment-log").start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            w = watch.Watch()
            try:
                for ev in w.stream(self.apps_api.list_namespaced_deployment, self.namespace,
                                   field_selector=f"metadata.name={self.name}", timeout_seconds=5):
                    now = time.perf_counter()
                    d = ev["object"]
                    st = d.status
                    snap = {
                        "replicas": d.spec.replicas or 0,
                        "generation": d.metadata.generation or 0,
                        "observed": st.observed_generation or 0,
                        "updated": st.updated_replicas or 0,
                        "ready": st.ready_replicas or 0,
                        "available": st.available_replicas or 0,
                        "total": st.replicas or 0,
                    }
                    with self._lock:
                        self.seen.append((now, snap))
                    if self._stop.is_set():
                        return
            except Exception:
                self._stop.wait(0.2)

    def first(self, after: float, pred) -> float | None:
        with self._lock:
            return next((t for t, s in self.seen if t >= after and pred(s)), None)


def ready_at(n: int):
    """The Deployment reports n ready replicas of its current generation."""
    return lambda s: (s["replicas"] == n and s["observed"] >= s["generation"] and s["ready"] == n
                      and s["updated"] >= n and s["available"] >= n and s["total"] == n)


def wait_until(fn, timeout: float, what: str, interval: float = 0.05):
    deadline = time.perf_counter() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        time.sleep(interval)


class RuntimeSocket:
    """/ws/runtimes/<id>/ as a browser would hold it: RuntimeProgressConsumer on an event loop of its
    own, registered as the server's loop (as `manage.py standalone` does), recording each message."""

    def __init__(self, user, runtime_id: int):
        from channels.routing import URLRouter
        from channels.testing import WebsocketCommunicator

        from dice_console import realtime
        from dice_console.routing import websocket_urlpatterns

        self.messages: list[tuple[float, dict]] = []
        self._lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="bench-ws-loop")
        self._thread.start()
        realtime.register_server_loop(self.loop)

        async def connect():
            comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/runtimes/{runtime_id}/")
            comm.scope["user"] = user
            connected, code = await comm.connect(timeout=10)
            if not connected:
                raise RuntimeError(f"websocket refused: {code}")
            return comm

        self.comm = asyncio.run_coroutine_threadsafe(connect(), self.loop).result(15)
        self._reader = asyncio.run_coroutine_threadsafe(self._read(), self.loop)

    async def _read(self) -> None:
        while True:
            msg = await self.comm.receive_json_from(timeout=3600)
            with self._lock:
                self.messages.append((time.perf_counter(), msg))

    def first(self, after: float, pred) -> float | None:
        with self._lock:
            return next((t for t, m in self.messages if t >= after and pred(m)), None)

    def close(self) -> None:
        from dice_console import realtime

        self._reader.cancel()

        async def bye():
            await self.comm.disconnect()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(bye(), self.loop).result(5)
        realtime.register_server_loop(None)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=20, help="scale changes")
    parser.add_argument("--deploys", type=int, default=20, help="deploys whose pushed progress is timed")
    parser.add_argument("--poll", type=float, default=None,
                        help="DICE_DEPLOY_POLL_INTERVAL (only for executors without status watches; "
                             "the Kubernetes rollout follows watch events)")
    parser.add_argument("--timeout", type=float, default=60, help="per change")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-status-") as tmp, ktestenv(2) as cluster:
        setup_django(tmp)
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.db import connection
        from kubernetes import client as k8s
        from rest_framework.test import APIClient

        from apps.clusters import services as clusters
        from apps.deploy import deployments
        from apps.deploy.models import Deployment
        from apps.deploy.refs import runtime_ref
        from apps.deploy.services import create_release
        from apps.deploy.tasks import run_deployment
        from apps.projects import services as projects

        if args.poll is not None:
            settings.DICE_DEPLOY_POLL_INTERVAL = args.poll
        poll = float(getattr(settings, "DICE_DEPLOY_POLL_INTERVAL", 1.0))
        db = "DATABASE_URL" if os.environ.get("DATABASE_URL") else f"SQLite in {tmp}"
        print(f"console: {db}; the rollout follows watch events (poll interval {poll:g} s unused)", flush=True)

        owner = get_user_model().objects.create_user("bench-owner")
        org = projects.create_organization(owner, slug="bench")
        project = projects.create_project(owner, org, slug="shop")
        app = projects.create_application(owner, project, slug="web")
        _, token = projects.create_token(owner, name="bench")
        kt = clusters.register_cluster(owner, name="bench-kt", kubeconfig=Path(cluster.kubeconfig).read_text())
        projects.update_workspace(owner, project.workspaces.get(kind="DEV"), cluster=kt)
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

        release = create_release(owner, app, spec_text=SPEC.format(replicas=1))
        d = deployments.deploy(owner, app, "DEV", release=release, runtime_name="main")
        start = time.perf_counter()
        result = run_deployment(d.pk)
        if result.get("status") != "healthy":
            raise SystemExit(f"first deploy: {result} {Deployment.objects.get(pk=d.pk).message}")
        print(f"first deploy healthy in {time.perf_counter() - start:.1f}s", flush=True)
        runtime = d.runtime
        namespace = runtime_ref(runtime).namespace
        log = DeploymentLog(k8s.AppsV1Api(cluster.api_client), namespace, "web")

        def web_of(body: dict) -> dict:
            return next((s for s in body["status"]["services"] if s["name"] == "web"), {})

        # ---- scale through the API, watch the API's live status ---------------------------------
        k8s_s, api_s, lag_s, post_s, get_s = [], [], [], [], []
        current = 1
        for i in range(args.changes):
            n = (current % 4) + 1  # 2, 3, 4, 1, 2, ...
            t0 = time.perf_counter()
            resp = api.post(f"/api/runtimes/{runtime.pk}/scale/", {"service": "web", "replicas": n}, format="json")
            post_s.append(time.perf_counter() - t0)
            if resp.status_code != 200:
                raise SystemExit(f"scale: {resp.status_code} {resp.content[:300]!r}")
            deadline = t0 + args.timeout
            shown = None
            while shown is None and time.perf_counter() < deadline:
                g0 = time.perf_counter()
                body = api.get(f"/api/runtimes/{runtime.pk}/").json()
                now = time.perf_counter()
                get_s.append(now - g0)
                web = web_of(body)
                if web.get("desired") == n and web.get("ready") == n and web.get("health") == "Healthy":
                    shown = now
            seen = wait_until(lambda t0=t0, n=n: log.first(t0, ready_at(n)), 10, "the Deployment watch")
            if shown is None:
                print(f"  change {i + 1}: API did not show {n} ready within {args.timeout:.0f}s", flush=True)
                continue
            k8s_s.append(seen - t0)
            api_s.append(shown - t0)
            lag_s.append(shown - seen)
            current = n
        scale_rows = [
            ("POST .../scale/ (returns after the driver's patch)", summary(post_s)),
            ("(a) scale -> Deployment reports the new ready count", summary(k8s_s)),
            ("(b) scale -> GET /api/runtimes/<id>/ shows it", summary(api_s)),
            ("    (b) - (a): console behind the cluster", summary(lag_s)),
            ("    one GET /api/runtimes/<id>/ (live status)", summary(get_s)),
        ]

        # ---- deploys: the rollout task and its pushed progress ----------------------------------
        socket = RuntimeSocket(owner, runtime.pk)
        dk8s, dpush, dhealthy, dlag, dlag_h, premature = [], [], [], [], [], []
        try:
            replicas = 1
            for i in range(args.deploys):
                replicas = 2 if replicas != 2 else 3
                rel = create_release(owner, app, spec_text=SPEC.format(replicas=replicas))
                t0 = time.perf_counter()
                dep = deployments.deploy(owner, app, "DEV", release=rel, runtime_name="main")
                outcome: dict = {}

                def worker(pk=dep.pk, out=outcome):
                    try:
                        out.update(run_deployment(pk))
                    finally:
                        connection.close()

                th = threading.Thread(target=worker, name="bench-rollout")
                th.start()
                th.join(args.timeout)
                if th.is_alive() or outcome.get("status") != "healthy":
                    print(f"  deploy {i + 1}: {outcome or 'still running'}", flush=True)
                    th.join(args.timeout)
                    continue
                n = replicas

                def shows(m, n=n, pk=dep.pk):
                    web = ((m.get("progress") or {}).get("services") or {}).get("web") or {}
                    return (m.get("deployment") == pk and web.get("ready") == n and web.get("desired") == n
                            and web.get("updated") == n)

                try:
                    seen = wait_until(lambda t0=t0, n=n: log.first(t0, ready_at(n)), 10, "the Deployment watch")
                    pushed = wait_until(lambda t0=t0, shows=shows: socket.first(t0, shows), 10, "the pushed progress")
                    healthy = wait_until(
                        lambda pk=dep.pk, t0=t0: socket.first(
                            t0, lambda m: m.get("deployment") == pk and m.get("status") == "healthy"),
                        10, "the pushed healthy transition")
                except TimeoutError:
                    # The console called it healthy while an old pod was still ready (web ready > desired).
                    early = socket.first(t0, lambda m, pk=dep.pk: m.get("deployment") == pk and m.get("status") == "healthy")
                    if early is not None:
                        premature.append(early - (log.first(t0, ready_at(n)) or float("nan")))
                    continue
                dk8s.append(seen - t0)
                dpush.append(pushed - t0)
                dhealthy.append(healthy - t0)
                dlag.append(pushed - seen)
                dlag_h.append(healthy - seen)
        finally:
            socket.close()
            log.stop()
        deploy_rows = [
            ("(a) deploy -> Deployment rolled out and ready", summary(dk8s)),
            ("(b) deploy -> pushed progress shows it (/ws/runtimes/<id>/)", summary(dpush)),
            ("    deploy -> pushed `healthy` transition", summary(dhealthy)),
            ("    (b) - (a): push behind the cluster", summary(dlag)),
            ("    `healthy` push behind the cluster", summary(dlag_h)),
            (f"`healthy` pushed while ready > desired ({len(premature)} of {args.deploys}); vs cluster done",
             summary(premature)),
        ]
        rss = cluster.rss_kib("VmHWM")
        deployments.delete_runtime(owner, runtime)

    print()
    rows = [("scale (API live status)", ""), *scale_rows, ("", ""),
            ("deploy (rollout task following watch events, pushed progress)", ""), *deploy_rows, ("", ""),
            ("control plane peak RSS (VmHWM) MiB", rss_line(cluster.peak_rss or rss))]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}".rstrip())
    print("\nThe runtime page re-fetches its live part every 10 s when no rollout runs (2 s during one):"
          " a browser sees a scale up to that much after the API could show it.")


if __name__ == "__main__":
    main()
