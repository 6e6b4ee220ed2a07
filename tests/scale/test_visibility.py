"""Celery as a transport, not a state store (issue 24 item 2): with Redis's visibility timeout at
5 s (`DICE_BROKER_VISIBILITY_TIMEOUT`, broker_transport_options), a step, a built-in `wait` and a
rollout that each last three times as long run exactly once, and no message is delivered twice.

Redis gives a message that a worker took but did not acknowledge to another consumer once the
timeout has passed (kombu looks for them every 10 s and scans every 10th time; here every second,
through DICE_BROKER_TRANSPORT_OPTIONS): a task that waited for a step or a rollout,
or a countdown held past the timeout, would run again. Here every task returns at once and the
timers hop (apps.pipelines.queue.longest_countdown), so the worker's log shows each task id
received once, the step's side effect is one line, the rollout was applied once."""

from __future__ import annotations

import base64
import re
import time
from collections import Counter

import pytest

from tests.scale.conftest import supervisor_pid

pytestmark = [pytest.mark.scale, pytest.mark.postgres, pytest.mark.redis]

VISIBILITY = 5  # seconds
LONG = 15  # seconds: three times the visibility timeout

PIPELINE = f"""\
version: "1.1"
stages:
  - stage:
      - custom-script:
          alias: slow
          commands:
            - "sleep {LONG}"
            - "echo ran >> ran.txt"
      - wait:
          alias: pause
          params:
            wait_time_sec: {LONG}
"""

SERVICE = f"""\
version: "2.0"
services:
  web:
    cmd: sleep {LONG} && exec python3 -m http.server $PORT --bind 127.0.0.1
    ports: [8080]
    resources: {{cpu: 0.05, mem: 64}}
    health_check:
      http: {{port: 8080, path: /, duration: 60}}
"""


def test_work_longer_than_the_visibility_timeout_runs_once(console, tmp_path):
    from apps.deploy.bundles import make_archive
    from apps.deploy.models import Deployment

    console, token, app, data = console
    console.env.update({
        "DICE_BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY), "DICE_SCALE_WORKER_LOGLEVEL": "INFO",
        "DICE_BROKER_TRANSPORT_OPTIONS": '{"unacked_restore_interval": 1, "unacked_restore_throttle": 1}',
    })
    console.start("web1")
    console.start("worker1")
    console.wait_listening("web1")
    deadline = time.monotonic() + 60
    while supervisor_pid(data / "local") != console.procs["worker1"].pid:
        assert time.monotonic() < deadline, console.tail("worker1")
        time.sleep(0.1)
    api = console.api(token)
    run = api("POST", "pipeline-runs/", json={"application": app.pk, "source": PIPELINE})["id"]
    files = tmp_path / "svc"
    files.mkdir()
    (files / "index.html").write_text("ok\n")
    deployment = api("POST", "deployments/", json={
        "application": app.pk, "workspace": "DEV", "runtime": "slow", "spec_text": SERVICE,
        "files_base64": base64.b64encode(make_archive(files)).decode()})["id"]

    deadline = time.monotonic() + 120
    status = rollout = None
    while time.monotonic() < deadline:
        status = api("GET", f"pipeline-runs/{run}/")["status"]
        rollout = api("GET", f"deployments/{deployment}/")["status"]
        if status not in ("queued", "running") and rollout not in ("queued", "deploying"):
            break
        time.sleep(0.5)
    assert (status, rollout) == ("success", "healthy"), console.tail("worker1")
    time.sleep(VISIBILITY + 2)  # past the timeout and a restore pass after everything ended: nothing comes back

    ran = data / "pipelines" / "runs" / str(run) / "dirs" / "slow" / "ran.txt"
    assert ran.read_text().splitlines() == ["ran"]
    assert Deployment.objects.get(pk=deployment).attempts == 1  # applied once
    log = (tmp_path / "worker1.log").read_text()
    received = Counter(re.findall(r"Task (\S+)\[([0-9a-f-]+)\] received", log))
    assert received, log[-2000:]
    twice = {key: n for key, n in received.items() if n > 1}
    assert not twice, f"delivered more than once: {twice}"
    names = {name for name, _ in received}
    # The rollout was handed to the worker, and the wait went through the timer (hops included).
    assert {"dice.deploy.run_deployment", "dice.pipelines.finish_wait"} <= names, names
    hops = sum(1 for name, _ in received if name == "dice.pipelines.finish_wait")
    assert hops >= LONG // (VISIBILITY / 2) - 1  # countdowns of at most half the timeout
