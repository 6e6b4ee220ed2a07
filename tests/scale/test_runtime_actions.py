"""Production mode (a uvicorn web process, a Celery worker supervising the local cluster, Redis):
scale, restart and delete of a local runtime, asked of the web process (API, web UI, CLI), are made
by the supervising worker (scheduler/local/control.py) with the same checks and audit as in
standalone mode; the web process never takes the cluster over."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.local.conftest import pid_alive
from tests.scale.conftest import supervisor_pid

pytestmark = [pytest.mark.scale, pytest.mark.postgres, pytest.mark.redis]

SERVICE = """\
version: "2.0"
services:
  web:
    cmd: exec sleep 600
    resources: {cpu: 0.05, mem: 32}
"""


def _wait(predicate, timeout: float, what: str, tail=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {tail()}")


def _state(data) -> dict:
    paths = list((data / "local" / "runtimes").glob("*/state.json"))
    return json.loads(paths[0].read_text()) if paths else {}


def _live_shims(data) -> list[int]:
    units = _state(data).get("units", {})
    return [slot["current"]["pid"] for unit in units.values() for slot in unit.get("slots", {}).values()
            if slot.get("current") and pid_alive(slot["current"]["pid"])]


def test_scale_restart_and_delete_through_the_web_process_run_in_the_supervising_worker(console, monkeypatch):
    from apps.projects.models import AuditEvent

    console, token, app, data = console
    console.start("worker1")
    console.start("web1")
    console.wait_listening("web1")
    worker = console.procs["worker1"].pid
    _wait(lambda: supervisor_pid(data / "local") == worker, 60, "the worker to supervise",
          lambda: console.tail("worker1"))
    api = console.api(token)

    deployment = api("POST", "deployments/", json={"application": app.pk, "workspace": "DEV", "runtime": "acts",
                                                   "spec_text": SERVICE})["id"]
    _wait(lambda: api("GET", f"deployments/{deployment}/")["status"] == "healthy", 90, "the deployment",
          lambda: console.tail("worker1"))
    runtime = next(r for r in api("GET", "runtimes/")["results"] if r["name"] == "acts")["id"]

    api("POST", f"runtimes/{runtime}/scale/", json={"service": "web", "replicas": 3})
    assert _state(data)["units"]["web"]["replicas"] == 3  # made by the worker before the answer
    _wait(lambda: len(_live_shims(data)) == 3, 30, "three replicas")

    # The web UI's button, through the other path of the same operation: the message says it.
    from apps.deploy.models import Runtime

    page = f"http://127.0.0.1:{console.ports['web1']}" + Runtime.objects.get(pk=runtime).get_absolute_url()
    browser = requests.Session()
    login = f"http://127.0.0.1:{console.ports['web1']}/login/"
    browser.get(login, timeout=30)
    signed = browser.post(login, data={"username": "scale-owner", "password": "scale-password",
                                       "csrfmiddlewaretoken": browser.cookies["csrftoken"]},
                          headers={"Referer": login}, timeout=60)
    assert signed.status_code == 200 and "sessionid" in browser.cookies, signed.text[-500:]
    done = browser.post(page + "scale/", data={"service": "web", "replicas": 2,
                                               "csrfmiddlewaretoken": browser.cookies["csrftoken"]},
                        headers={"Referer": page}, timeout=60)
    assert done.status_code == 200 and "Scaled web to 2." in done.text, done.text[-1000:]
    assert _state(data)["units"]["web"]["replicas"] == 2
    _wait(lambda: len(_live_shims(data)) == 2, 30, "two replicas")

    # The CLI (through the API of the web process).
    from dice_cli.main import main

    monkeypatch.setenv("DICE_SERVER", f"http://127.0.0.1:{console.ports['web1']}")
    monkeypatch.setenv("DICE_TOKEN", token)
    before = set(_live_shims(data))
    target = f"{app.project.organization.slug}/{app.project.slug}/{app.slug}"
    assert main(["runtime", "restart", target, "--workspace", "DEV", "--runtime", "acts", "web"]) == 0
    _wait(lambda: len(set(_live_shims(data)) - before) == 2, 60, "the rolling restart")

    # An error of the cluster reaches the user as for any change: 400 naming it, nothing changed.
    bad = requests.post(f"http://127.0.0.1:{console.ports['web1']}/api/runtimes/{runtime}/scale/",
                        headers={"Authorization": f"Bearer {token}"}, json={"service": "nope", "replicas": 1},
                        timeout=30)
    assert bad.status_code == 400 and "nope" in bad.text

    shims = _live_shims(data)
    gone = requests.delete(f"http://127.0.0.1:{console.ports['web1']}/api/runtimes/{runtime}/",
                           headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert gone.status_code == 204, gone.text
    assert not list((data / "local" / "runtimes").glob("*/state.json"))
    assert not any(pid_alive(pid) for pid in shims)

    assert supervisor_pid(data / "local") == worker  # the web process never took the cluster over
    actions = set(AuditEvent.objects.filter(application=app).values_list("action", flat=True))
    assert {"scale", "restart", "delete"} <= actions
