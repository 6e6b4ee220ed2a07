"""Production mode at scale and under faults (issue 24): the console started as the README's
production section runs it (2 uvicorn web processes, 2 Celery workers, 1 beat, PostgreSQL and
Redis) while, at the same time, 20 pipelines of 50 steps run, 10 deployments roll out on the local
cluster and 20 step logs are followed over WebSockets, with clients spread over both web
processes. Part way, one worker (the one supervising the local cluster) and one web process are
killed with SIGKILL and started again.

Checked: every run and deployment finishes; every step ran exactly once (each appends a line to a
file in its working directory: the lines are counted, not the statuses); every followed log has
each of its lines exactly once, in order, across the reconnects the dead web process forced; every
deployment that was still rolling out when the worker died reaches its final state within 5 s of
the standby worker taking over. Wall time and the peak memory of the console's processes are
printed (`pytest -s`).

Sized for CI on two cores: the steps are no-ops beside their side effect (`echo`), the services a
`sleep` and Python's http.server."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, make_org

pytestmark = [pytest.mark.scale, pytest.mark.postgres, pytest.mark.redis]

# DICE_SCALE_PIPELINES / DICE_SCALE_DEPLOYMENTS make it smaller, to look into a failure.
PIPELINES = int(os.environ.get("DICE_SCALE_PIPELINES", 20))
STAGES, PER_STAGE = 5, 10  # 50 steps per pipeline
DEPLOYMENTS = int(os.environ.get("DICE_SCALE_DEPLOYMENTS", 10))
LOG_LINES = 150
DEADLINE = 170  # seconds for the whole workload (the tier's budget is ~3 minutes)
RECOVERY = 5.0  # seconds after the standby takes over by which every rollout has ended

SERVICE = """\
version: "2.0"
services:
  web:
    cmd: sleep 3 && exec python3 -m http.server $PORT --bind 127.0.0.1
    ports: [8080]
    resources: {cpu: 0.05, mem: 64}
    health_check:
      http: {port: 8080, path: /, duration: 60}
"""


def _pipeline() -> str:
    """Stage 1: the talking step (LOG_LINES numbered lines, ~5 s) beside nine no-ops; then four
    stages of ten no-ops. Every step appends one line to ran.txt in its own working directory."""
    talk = (f"i=1; while [ $i -le {LOG_LINES} ]; do echo \"line $i\"; i=$((i+1)); "
            "if [ $((i % 10)) -eq 0 ]; then sleep 0.3; fi; done")
    lines = ['version: "1.1"', "stages:"]
    for stage in range(STAGES):
        lines.append("  - stage:")
        for n in range(PER_STAGE):
            alias = "talk" if (stage, n) == (0, 0) else f"s{stage}n{n}"
            commands = ["echo ran >> ran.txt"] + ([talk] if alias == "talk" else [])
            lines.append("      - custom-script:")
            lines.append(f"          alias: {alias}")
            lines.append("          commands:")
            lines.extend(f"            - {json.dumps(c)}" for c in commands)
    return "\n".join(lines) + "\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Console:
    """The production processes, each in its own session, its output in a file."""

    def __init__(self, tmp: Path, env: dict):
        self.tmp, self.env = tmp, env
        self.procs: dict[str, subprocess.Popen] = {}
        self.ports = {"web1": _free_port(), "web2": _free_port()}

    def command(self, name: str) -> list[str]:
        if name.startswith("web"):
            return [sys.executable, "-m", "uvicorn", "dice_console.asgi:application", "--host", "127.0.0.1",
                    "--port", str(self.ports[name]), "--log-level", "warning", "--no-access-log"]
        if name.startswith("worker"):
            return [sys.executable, "-m", "celery", "-A", "dice_console", "worker", "-n", f"{name}@%h",
                    "--loglevel", os.environ.get("DICE_SCALE_WORKER_LOGLEVEL", "WARNING")]
        return [sys.executable, "-m", "celery", "-A", "dice_console", "beat", "--loglevel", "WARNING"]

    def start(self, name: str) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - kept by the process
        proc = subprocess.Popen(self.command(name), cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def kill(self, name: str) -> None:
        os.kill(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait(10)

    def wait_listening(self, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.procs[name].poll() is None, self.tail(name)
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.ports[name]), 0.5):
                return
            time.sleep(0.1)
        raise AssertionError(f"{name} did not listen: {self.tail(name)}")

    def tail(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def rss_mib(self) -> float:
        """Resident memory of the console's processes (web, workers, beat), not the steps' or services'."""
        total = 0
        for proc in self.procs.values():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        return total / 1024

    def stop(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGTERM if name.startswith("web") else signal.SIGKILL)
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(15)
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)


def _tasks_summary(runs: list[int]) -> dict:
    """What the runs' tasks are doing, for a failure's message."""
    from django.db.models import Count

    from apps.pipelines.models import TaskRun

    tasks = TaskRun.objects.filter(run_id__in=runs)
    stuck = list(tasks.exclude(status="success").values("run_id", "alias", "status", "attempt", "job_name",
                                                         "started", "reason")[:8])
    return {"by status": dict(tasks.values_list("status").annotate(n=Count("id"))), "not successful": stuck}


def _supervisor_pid(local_root: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int((local_root / "supervisor.lock").read_text().strip())
    return None


class Follower(threading.Thread):
    """Follows one task's log over /ws/logs/ on a web process, resuming from the last line on
    another when its connection drops."""

    def __init__(self, console: Console, token: str, task_id: int, first_web: str, stop: threading.Event):
        super().__init__(daemon=True)
        self.console, self.token, self.task_id, self.web = console, token, task_id, first_web
        self.stop_event = stop
        self.numbers: list[int] = []
        self.texts: list[str] = []
        self.last: int | None = None
        self.reconnects = 0
        self.error: str | None = None
        self.failure = ""  # why the last connection ended

    def run(self) -> None:
        from websockets.sync.client import connect

        stream = f"task:{self.task_id}"
        while self.last is None and not self.stop_event.is_set():
            port = self.console.ports[self.web]
            try:
                with connect(f"ws://127.0.0.1:{port}/ws/logs/", additional_headers={
                        "Authorization": f"Bearer {self.token}"}, origin=f"http://127.0.0.1:{port}",
                             open_timeout=5) as ws:
                    ws.send(json.dumps({"type": "subscribe", "stream": stream,
                                        "from": self.numbers[-1] if self.numbers else 0}))
                    while not self.stop_event.is_set():
                        try:
                            message = json.loads(ws.recv(timeout=1))
                        except TimeoutError:
                            continue
                        if message["type"] == "lines":
                            for line in message["lines"]:
                                self.numbers.append(line[0])
                                self.texts.append(line[3])
                        elif message["type"] == "end":
                            self.last = message["last"]
                            return
                        elif message["type"] == "error":
                            self.error = str(message)
                            return
            except Exception as exc:  # the web process died (or was not up again yet): the other one
                self.failure = f"{exc.__class__.__name__}: {exc}"
                self.reconnects += 1
                self.web = "web2" if self.web == "web1" else "web1"
                time.sleep(0.2)


@pytest.fixture
def console(transactional_db, tmp_path):
    import redis
    from django.contrib.auth import get_user_model
    from django.db import connection

    from apps.projects import services

    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()  # this tier's own Redis database
    user = get_user_model().objects.create_user("scale-owner", password="scale-password")
    org = make_org(user, "scale")
    project = services.create_project(user, org, slug="load")
    app = services.create_application(user, project, slug="svc")
    _, token = services.create_token(user, name="scale")

    db = connection.settings_dict
    database_url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    drop = ("DJANGO_SETTINGS_MODULE", "DICE_LOCAL_ROOT", "DICE_PIPELINE_ROOT", "DICE_DEPLOY_FILES")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update({
        "DATABASE_URL": database_url, "DICE_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1",
        "DICE_SECRET_KEY": "scale-tier-secret-key", "DICE_PIPELINE_MAX_RUNS_PER_PROJECT": str(PIPELINES),
        # Messages a killed worker held come back after 20 s, during the run: delivered twice, done once.
        "DICE_BROKER_VISIBILITY_TIMEOUT": "20",
        "DICE_DEPLOY_DEGRADED_GRACE": "60",
    })
    console = Console(tmp_path, env)
    try:
        yield console, token, app, tmp_path / "data"
    finally:
        console.stop()
        # Services and steps of the local cluster outlive the console: stop them.
        local = tmp_path / "data" / "local"
        if local.exists():
            from scheduler.base import ClusterRef
            from scheduler.local import create_executor

            ref = ClusterRef(name="local", kind="local", config={"root": str(local)})
            executor = create_executor(ref)
            try:
                executor.destroy_all()
            finally:
                executor.close()


def test_production_mode_under_load_survives_a_killed_worker_and_web_process(console, tmp_path, capsys):
    from apps.deploy.bundles import make_archive

    console, token, app, data = console
    local_root = data / "local"
    started = time.monotonic()
    env = console.env
    migrate = subprocess.run([sys.executable, "manage.py", "migrate", "--check"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr

    for name in ("web1", "web2", "worker1"):
        console.start(name)
    console.wait_listening("web1")
    console.wait_listening("web2")
    deadline = time.monotonic() + 60
    while _supervisor_pid(local_root) != console.procs["worker1"].pid:
        assert time.monotonic() < deadline, console.tail("worker1")
        time.sleep(0.1)
    console.start("worker2")  # the standby
    console.start("beat")
    peak = [console.rss_mib()]
    sampling = threading.Event()

    def sample():
        while not sampling.wait(0.5):
            peak[0] = max(peak[0], console.rss_mib())

    threading.Thread(target=sample, daemon=True).start()

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    webs = ["web1", "web2"]

    def api(method: str, path: str, n: int = 0, **kwargs):
        """A request to one web process, the other one when it is down (clients spread over both)."""
        for attempt in range(40):
            web = webs[(n + attempt) % 2]
            try:
                response = session.request(method, f"http://127.0.0.1:{console.ports[web]}/api/{path}",
                                           timeout=30, **kwargs)
            except requests.ConnectionError:
                time.sleep(0.25)
                continue
            assert response.status_code < 300, (path, response.status_code, response.text[:500])
            return response.json()
        raise AssertionError(f"no web process answered {method} {path}")

    # The work, all at once: pipelines, log followers, deployments.
    source = _pipeline()
    runs = [api("POST", "pipeline-runs/", i, json={"application": app.pk, "source": source})["id"]
            for i in range(PIPELINES)]
    files = tmp_path / "svc"
    files.mkdir()
    (files / "index.html").write_text("ok\n")
    archive = base64.b64encode(make_archive(files)).decode()
    deployments = [api("POST", "deployments/", i, json={
        "application": app.pk, "workspace": "DEV", "runtime": f"rt{i}", "spec_text": SERVICE,
        "files_base64": archive})["id"] for i in range(DEPLOYMENTS)]

    stop = threading.Event()
    followers = []
    for i, run_id in enumerate(runs):
        task_id = None
        while task_id is None:
            tasks = api("GET", f"pipeline-runs/{run_id}/", i)["tasks"]
            task_id = next((t["id"] for t in tasks if t["alias"] == "talk"), None)
        follower = Follower(console, token, task_id, webs[i % 2], stop)
        follower.start()
        followers.append(follower)

    submitted = time.monotonic() - started
    # Part way: the supervising worker and one web process die, and are started again.
    time.sleep(1.0)
    active_at_kill = [d for d in deployments if api("GET", f"deployments/{d}/", 1)["status"] in ("queued", "deploying")]
    killed_at = time.monotonic()
    console.kill("worker1")
    console.kill("web1")
    console.start("worker1")  # now the standby
    console.start("web1")
    deadline = time.monotonic() + 30
    while _supervisor_pid(local_root) != console.procs["worker2"].pid:
        assert time.monotonic() < deadline, console.tail("worker2")
        time.sleep(0.05)
    took_over, took_over_at = time.monotonic(), time.time()
    console.wait_listening("web1")

    # Every deployment ends; those that were rolling out within RECOVERY s of the takeover.
    ended_at: dict[int, float] = {}
    final: dict[int, dict] = {}
    deadline = started + DEADLINE
    while len(ended_at) < DEPLOYMENTS and time.monotonic() < deadline:
        for n, d in enumerate(deployments):
            if d not in ended_at:
                row = api("GET", f"deployments/{d}/", n)
                if row["status"] not in ("queued", "deploying"):
                    ended_at[d], final[d] = time.monotonic(), row
        time.sleep(0.1)
    assert len(ended_at) == DEPLOYMENTS, "deployments still rolling out"
    assert {d: final[d]["status"] for d in deployments} == dict.fromkeys(deployments, "healthy"), final
    # When each ended, by its own history (the server's clock), not when this loop saw it.
    from apps.deploy.models import DeploymentTransition

    ended = dict(DeploymentTransition.objects.filter(deployment_id__in=deployments, to_status="healthy")
                 .values_list("deployment_id", "at"))
    recovery = {d: max(0.0, ended[d].timestamp() - took_over_at) for d in active_at_kill}
    late = {d: round(s, 2) for d, s in recovery.items() if s > RECOVERY}
    assert not late, f"rollouts ended more than {RECOVERY} s after the takeover: {late}"

    # Every run ends, successfully.
    statuses: dict[int, str] = {}
    while time.monotonic() < deadline:
        statuses = {r: api("GET", f"pipeline-runs/{r}/", r)["status"] for r in runs}
        if all(s in ("success", "failed", "cancelled", "error") for s in statuses.values()):
            break
        time.sleep(1)
    assert set(statuses.values()) == {"success"}, (statuses, _tasks_summary(runs))

    # Every followed log: each line once, in order, and the talking step's lines all there.
    for follower in followers:
        follower.join(max(1.0, deadline - time.monotonic()))
    stop.set()
    for follower in followers:
        assert follower.error is None, follower.error
        assert follower.last is not None, (
            f"task {follower.task_id}: no end after {follower.numbers[-3:]} ({follower.reconnects} reconnects, "
            f"{follower.failure})")
        assert follower.numbers == list(range(1, follower.last + 1)), f"task {follower.task_id}"
        said = [t for t in follower.texts if t.startswith("line ")]
        assert said == [f"line {i}" for i in range(1, LOG_LINES + 1)], f"task {follower.task_id}"

    # Every step ran exactly once: one line in its working directory's ran.txt.
    pipelines_root = data / "pipelines"
    counts: dict[tuple[int, str], int] = {}
    for run_id in runs:
        for stage in range(STAGES):
            for n in range(PER_STAGE):
                alias = "talk" if (stage, n) == (0, 0) else f"s{stage}n{n}"
                path = pipelines_root / "runs" / str(run_id) / "dirs" / alias / "ran.txt"
                counts[(run_id, alias)] = len(path.read_text().splitlines()) if path.exists() else 0
    wrong = {key: c for key, c in counts.items() if c != 1}
    assert not wrong, f"steps that did not run exactly once: {wrong}"
    sampling.set()
    wall = time.monotonic() - started
    with capsys.disabled():
        print(f"\nscale tier: {PIPELINES} x {STAGES * PER_STAGE} steps, {DEPLOYMENTS} deployments, "
              f"{len(followers)} log streams; wall {wall:.1f} s; console processes' peak RSS {peak[0]:.0f} MiB; "
              f"takeover {took_over - killed_at:.2f} s after the kill; rollouts active at the kill "
              f"{len(active_at_kill)}, ended {max(recovery.values(), default=0):.2f} s after the takeover at most; "
              f"log reconnects {sum(f.reconnects for f in followers)}; work submitted {submitted:.1f} s after the start")
