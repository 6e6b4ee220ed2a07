"""The local engine measures its replicas from /proc: a CPU-burning service reads as busy, an
idle one as idle, both with their resident memory; a restart shows in the counts."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from scheduler.base import usage_of
from tests.local.conftest import group_of, pid_alive, wait_for

SPEC = """version: "2.0"
services:
  burn:
    cmd: while :; do :; done
    resources: {cpu: 1, mem: 64}
  idle:
    cmd: exec sleep 1000
    resources: {cpu: 0.1, mem: 32}
"""


def _tree_cpu_ns(root: int) -> int:
    """CPU nanoseconds of a process and its descendants from /proc/PID/schedstat: another source
    than the ticks of /proc/PID/stat the engine reads."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                data = Path(f"/proc/{entry}/stat").read_bytes()
                parents[int(entry)] = int(data[data.rindex(b")") + 2:].split()[1])
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += [child for child, parent in parents.items() if parent == pid]
    total = 0
    for pid in tree:
        with contextlib.suppress(OSError, ValueError):
            total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    return total


def test_usage_of_busy_and_idle_replicas(executor, runtime):
    executor.apply(group_of(SPEC, runtime))
    wait_for(lambda: sorted(r.name for s in executor.status(runtime).services.values() for r in s.replicas
                            if r.state == "Running") == ["burn-0", "idle-0"], 20, "both services running")
    first = usage_of(executor, runtime)  # a first reading is measured over a short window
    assert first.available
    by_service = {r.service: r for r in first.replicas}
    assert set(by_service) == {"burn", "idle"}
    assert by_service["burn"].memory_bytes > 100_000 and by_service["idle"].memory_bytes > 100_000
    assert by_service["burn"].replica == "burn-0" and by_service["burn"].restarts == 0
    # the next reading is the rate since this one: what the busy loop got of the (shared, loaded)
    # machine, as the kernel's scheduler accounts it independently
    burner = executor.pids(runtime)["burn-0"]["process"]
    cpu0, t0 = _tree_cpu_ns(burner), time.monotonic()
    time.sleep(1.0)
    second = {r.service: r for r in usage_of(executor, runtime).replicas}
    cpu1, t1 = _tree_cpu_ns(burner), time.monotonic()
    expected = (cpu1 - cpu0) / 1e6 / (t1 - t0)
    assert expected > 0
    assert abs(second["burn"].cpu_millicores - expected) <= 0.25 * expected + 15, (second["burn"], expected)
    assert second["idle"].cpu_millicores < 20 and second["burn"].cpu_millicores > second["idle"].cpu_millicores


def test_restarts_are_counted(executor, runtime):
    executor.apply(group_of('version: "2.0"\nservices:\n  flaky:\n    cmd: sleep 0.2; exit 3\n', runtime))
    found = wait_for(lambda: (u := usage_of(executor, runtime)).replicas and u.replicas[0].restarts >= 1 and u,
                     20, "a restart")
    assert found.replicas[0].service == "flaky"


AUTOSCALED = """version: "2.0"
services:
  burst:
    cmd: end=$(( $(date +%s) + 6 )); while [ "$(date +%s)" -lt "$end" ]; do i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; done; exec sleep 1000
    resources: {cpu: 0.01, mem: 64}
    deployments:
      replicas: 1
      autoscale: {min: 1, max: 3, cpu_percent: 10}
"""


def test_cpu_burning_service_scales_out_and_back_in(make_executor, runtime, monkeypatch):
    """Each replica burns CPU for its first 6 s, then sleeps: the autoscaler adds replicas while
    they burn (one burning replica, even throttled to its 0.01-core limit on a loaded machine, is 10
    times the 10% target: straight to max) and removes them once they are idle."""
    monkeypatch.setenv("DICE_LOCAL_AUTOSCALE_INTERVAL", "0.5")
    monkeypatch.setenv("DICE_LOCAL_AUTOSCALE_UP_COOLDOWN", "1")
    monkeypatch.setenv("DICE_LOCAL_AUTOSCALE_DOWN_COOLDOWN", "2")
    executor = make_executor()
    executor.apply(group_of(AUTOSCALED, runtime))
    replicas = lambda: executor.service_status(runtime, "burst").desired  # noqa: E731
    wait_for(lambda: replicas() == 3, 30, "a scale-out to max (3)")
    added = wait_for(lambda: len(p := executor.pids(runtime)) == 3 and all(v["process"] for v in p.values()) and p,
                     30, "the added replicas running")
    wait_for(lambda: replicas() == 1, 60, "a scale-in back to min (1)")
    # the removed replicas stop asynchronously (their shims first, then the sandboxed commands)
    gone = [added[name]["process"] for name in ("burst-1", "burst-2")] + [added[n]["shim"] for n in ("burst-1", "burst-2")]
    wait_for(lambda: not any(pid_alive(pid) for pid in gone), 30, "the removed replicas' processes to end")
    events = [e for e in executor.events(runtime) if e.reason == "Autoscaled"]
    assert events[0].message.startswith("burst: 1 -> ") and "cpu" in events[0].message
    assert " -> 1 replicas" in events[-1].message
    # a deploy of the same spec keeps what the autoscaler chose (within min..max)
    executor.apply(group_of(AUTOSCALED, runtime))
    assert replicas() == 1


WEB = """version: "2.0"
services:
  web:
    cmd: exec python3 -m http.server $PORT --bind 127.0.0.1
    ports:
      - port: 8080
        expose: true
"""


def test_front_proxy_counts_requests_and_time_to_first_byte(executor, runtime):
    import urllib.request

    executor.apply(group_of(WEB, runtime))
    url = wait_for(lambda: (s := executor.service_status(runtime, "web")).health == "Healthy" and s.url, 30,
                   "the web service")
    for _ in range(3):
        with urllib.request.urlopen(url + "/", timeout=10) as response:
            assert response.status == 200
    traffic = wait_for(lambda: (t := usage_of(executor, runtime).traffic.get("web")) and t["replies"] >= 3 and t,
                       10, "three answered connections")
    assert traffic["connections"] >= 3 and 0 < traffic["first_byte_seconds"] < 30
