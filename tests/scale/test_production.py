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
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import ROOT
from tests.scale.conftest import Console, supervisor_pid

pytestmark = [pytest.mark.scale, pytest.mark.postgres, pytest.mark.redis]

# DICE_SCALE_PIPELINES / DICE_SCALE_DEPLOYMENTS make it smaller, to look into a failure.
PIPELINES = int(os.environ.get("DICE_SCALE_PIPELINES", 20))
STAGES, PER_STAGE = 5, 10  # 50 steps per pipeline
DEPLOYMENTS = int(os.environ.get("DICE_SCALE_DEPLOYMENTS", 10))
LOG_LINES = 150
DEADLINE = float(os.environ.get("DICE_SCALE_DEADLINE", 300))  # seconds for the whole workload: a bound, not the budget
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


def _tasks_summary(runs: list[int]) -> dict:
    """What the runs' tasks are doing, for a failure's message."""
    from django.db.models import Count

    from apps.pipelines.models import TaskRun

    tasks = TaskRun.objects.filter(run_id__in=runs)
    stuck = list(tasks.exclude(status="success").values("run_id", "alias", "status", "attempt", "job_name",
                                                         "started", "reason")[:8])
    return {"by status": dict(tasks.values_list("status").annotate(n=Count("id"))), "not successful": stuck}


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
    while supervisor_pid(local_root) != console.procs["worker1"].pid:
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

    api = console.api(token)
    webs = ["web1", "web2"]

    # The work, all at once: pipelines, log followers, deployments.
    source = _pipeline()
    runs = [api("POST", "pipeline-runs/", i, json={"application": app.pk, "source": source})["id"]
            for i in range(PIPELINES)]

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

    # The deployments last, so that the worker dies while they roll out.
    files = tmp_path / "svc"
    files.mkdir()
    (files / "index.html").write_text("ok\n")
    archive = base64.b64encode(make_archive(files)).decode()
    deployments = [api("POST", "deployments/", i, json={
        "application": app.pk, "workspace": "DEV", "runtime": f"rt{i}", "spec_text": SERVICE,
        "files_base64": archive})["id"] for i in range(DEPLOYMENTS)]
    submitted = time.monotonic() - started
    # Part way: the supervising worker and one web process die, and are started again.
    active_at_kill = [d for d in deployments if api("GET", f"deployments/{d}/", 1)["status"] in ("queued", "deploying")]
    killed_at = time.monotonic()
    console.kill("worker1")
    console.kill("web1")
    console.start("worker1")  # now the standby
    console.start("web1")
    deadline = time.monotonic() + 30
    while supervisor_pid(local_root) != console.procs["worker2"].pid:
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
