"""The guestbook example on the local runtime: front -> API -> Redis, scaling, crashes,
redeploys, a console restart and destroy."""

from __future__ import annotations

import json
import os
import signal
import urllib.parse
import urllib.request

import pytest

from scheduler.base import Health
from scheduler.local.state import port_free, proc_start_time
from tests.local.conftest import pid_alive, wait_for

pytestmark = pytest.mark.needs_binary("redis-server", "redis-server")


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def sign(front: str, text: str) -> None:
    data = urllib.parse.urlencode({"text": text}).encode()
    with urllib.request.urlopen(urllib.request.Request(front + "/sign", data=data), timeout=10) as response:
        assert response.status == 200  # after the 303 to /


def all_pids(executor, runtime) -> set[int]:
    return {p for entry in executor.pids(runtime).values() for p in entry.values() if p}


def test_page_goes_front_api_redis(executor, runtime, guestbook):
    status = executor.status(runtime)
    front = status.services["front"].url
    assert front.startswith("http://127.0.0.1:")
    assert "<h1>Dice guestbook</h1>" in get(front + "/")
    sign(front, "hello from the test")
    assert "<li>hello from the test</li>" in get(front + "/")
    assert status.addons["guestbook-redis"].health is Health.HEALTHY
    # The API really got its variables: the Redis port is the addon's.
    api_lines = [line.text for line in executor.logs(runtime, "api")]
    assert any(status.addons["guestbook-redis"].url.split(":")[1] in text for text in api_lines)


def test_scale_api_to_two(executor, runtime, guestbook):
    executor.scale(runtime, "api", 2)
    api = wait_for(lambda: (s := executor.service_status(runtime, "api")).ready == 2 and s, what="2 ready")
    assert api.desired == 2 and api.health is Health.HEALTHY
    assert {r.name for r in api.replicas} == {"api-0", "api-1"}
    assert all(r.ready for r in api.replicas)
    served = {json.loads(get(api.url + "/entries"))["served_by"] for _ in range(6)}
    assert len(served) == 2  # the front port balances over both replicas


def test_killed_process_restarts(executor, runtime, guestbook):
    victim = executor.pids(runtime)["api-0"]["process"]
    os.kill(victim, signal.SIGKILL)
    api = wait_for(
        lambda: (s := executor.service_status(runtime, "api")).replicas[0].restarts == 1 and s.ready == 1 and s,
        what="api-0 restarted and ready",
    )
    assert api.replicas[0].ready
    assert executor.pids(runtime)["api-0"]["process"] != victim
    reasons = [e.reason for e in executor.events(runtime, "api")]
    assert "Exited" in reasons and "Restarted" in reasons
    assert "Dice guestbook" in get(executor.status(runtime).services["front"].url + "/")


def test_redeploy_is_idempotent(executor, runtime, guestbook):
    before = executor.pids(runtime)
    executor.apply(guestbook)
    executor.apply(guestbook)
    executor.tick()
    assert executor.pids(runtime) == before
    assert executor.status(runtime).health is Health.HEALTHY


def test_new_executor_readopts(make_executor, executor, runtime, guestbook):
    before = executor.pids(runtime)
    front = executor.status(runtime).services["front"].url
    executor.close()  # the console goes away; its processes do not
    assert all(pid_alive(p) for entry in before.values() for p in entry.values())

    again = make_executor()
    assert again.pids(runtime) == before  # adopted, not restarted, not duplicated
    wait_for(lambda: again.status(runtime).health is Health.HEALTHY, what="healthy after adoption")
    assert again.status(runtime).services["front"].url == front  # stable front port
    assert "Dice guestbook" in wait_for(lambda: get(front + "/"), what="the page through the new proxy")
    # Supervision resumed: an adopted process that dies is restarted by the new executor.
    os.kill(before["front-0"]["process"], signal.SIGKILL)
    wait_for(lambda: again.service_status(runtime, "front").replicas[0].restarts == 1
             and again.service_status(runtime, "front").ready == 1, what="adopted front restarted")


def test_restart_is_rolling(executor, runtime, guestbook):
    old = executor.pids(runtime)["api-0"]
    executor.restart(runtime, "api")
    wait_for(lambda: executor.pids(runtime).get("api-0", old) != old
             and executor.status(runtime).health is Health.HEALTHY, what="api replaced")
    wait_for(lambda: not pid_alive(old["shim"]), what="old api stopped")


def test_destroy_leaves_nothing(executor, runtime, guestbook, local_root):
    status = executor.status(runtime)
    pids = {(p, proc_start_time(p)) for p in all_pids(executor, runtime)}
    ports = [int(s.url.rsplit(":", 1)[1]) for s in status.services.values()]
    ports += [int(a.url.rsplit(":", 1)[1]) for a in status.addons.values()]
    ports += [int(r.address.rsplit(":", 1)[1]) for s in status.services.values() for r in s.replicas]
    assert len(pids) == 6  # three shims, three processes
    executor.destroy(runtime)
    assert [p for p, start in pids if proc_start_time(p) == start] == []
    assert [port for port in ports if not port_free(port)] == []
    assert executor.status(runtime).health is Health.MISSING
    assert not (local_root / "runtimes" / runtime.namespace).exists()
    executor.destroy(runtime)  # missing is fine
