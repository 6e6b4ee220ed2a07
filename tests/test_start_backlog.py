"""The start backlog (scheduler.base.START_BACKLOG): the jobs this process accepted and has not yet
handed to their processes, which the step monitor yields to before it collects (issue 25: on the
local cluster the console starts a wide stage's hundred processes itself, and collecting the steps
that finished meanwhile competed with those starts for the interpreter lock and the cores)."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from apps.pipelines import engine, monitor
from scheduler.base import START_BACKLOG, JobSpec, StartBacklog


def test_the_backlog_counts_down_and_wakes_a_waiter():
    backlog = StartBacklog()
    assert backlog.wait_clear(0) is True
    backlog.add(2)
    assert backlog.pending() == 2
    started = time.monotonic()
    assert backlog.wait_clear(0.1) is False  # still two pending: waited its bound, not more
    assert 0.09 <= time.monotonic() - started < 1.0
    woke = []
    waiter = threading.Thread(target=lambda: woke.append((backlog.wait_clear(10), time.monotonic())))
    waiter.start()
    backlog.done()
    time.sleep(0.05)
    assert not woke  # one is still pending
    cleared = time.monotonic()
    backlog.done()
    waiter.join(5)
    assert woke and woke[0][0] is True and woke[0][1] - cleared < 0.5
    backlog.done()  # one too many (a cancelled start counted twice) never goes below nothing
    assert backlog.pending() == 0
    backlog.add()
    assert backlog.pending() == 1


def _job(name: str, tmp_path) -> JobSpec:
    work = tmp_path / "work" / name
    return JobSpec(name=name, command=["/bin/true"], workdir=str(work), namespace="backlog-ns", tenant="backlog-ns",
                   mounts={str(work): "rw"})


def test_a_local_burst_is_pending_until_handed_over_and_a_closed_executor_leaves_none(unsandboxed, tmp_path):
    """A burst's starts count until each one's starter thread ran it; an executor closed with
    starts still queued (their futures cancelled) leaves none counted, else every collection
    after it would wait its whole bound."""
    from scheduler.local import LocalExecutor

    assert START_BACKLOG.wait_clear(10)
    executor = LocalExecutor(root=tmp_path / "root", supervise=False)
    try:
        with executor.job_batch():
            for i in range(6):
                executor.run_job(_job(f"j{i}", tmp_path))
            assert START_BACKLOG.pending() == 0  # accepted, not yet given to the starter threads
        assert START_BACKLOG.pending() > 0 or all(
            executor.job_status(f"j{i}", "backlog-ns").state.value != "pending" for i in range(6))
        assert START_BACKLOG.wait_clear(30)
        assert all(executor.job_status(f"j{i}", "backlog-ns").state.value != "pending" for i in range(6))
    finally:
        executor.close()
    second = LocalExecutor(root=tmp_path / "root2", supervise=False)
    with second.job_batch():
        for i in range(40):
            second.run_job(_job(f"k{i}", tmp_path))
    second.close()  # most of the forty are still queued: cancelled
    assert START_BACKLOG.wait_clear(10), f"{START_BACKLOG.pending()} starts still counted after close"


@pytest.fixture
def running_monitor(monkeypatch):
    """A step monitor's datagram thread alone, its collections recorded instead of made."""
    offered: list[tuple[list[int], float]] = []
    monkeypatch.setattr(engine, "offer_to_collector", lambda ids: offered.append((list(ids), time.monotonic())) or True)
    mon = monitor.StepMonitor()
    mon.thread.start()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def report(task_id: int) -> float:
        sender.sendto(json.dumps({"task_run": task_id}).encode(), (mon.host, mon.port))
        return time.monotonic()

    try:
        yield report, offered
    finally:
        sender.close()
        mon._stop.set()
        mon.thread.join(5)
        mon.sock.close()


def _until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_the_monitor_collects_after_the_pending_starts(running_monitor):
    report, offered = running_monitor
    START_BACKLOG.add()
    try:
        report(41)
        time.sleep(0.3)
        assert offered == []  # a start is pending: the result waits in its file
    finally:
        cleared = time.monotonic()
        START_BACKLOG.done()
    assert _until(lambda: offered, 2.0)
    assert offered[0][0] == [41] and offered[0][1] - cleared < 0.5
    sent = report(42)  # nothing pending: collected at once
    assert _until(lambda: len(offered) == 2, 2.0)
    assert offered[1][0] == [42] and offered[1][1] - sent < 0.5


def test_the_monitor_waits_for_starts_only_so_long(running_monitor, monkeypatch):
    """Starts that never end (a stuck starter, an endless stream) delay a collection by the bound,
    never forever."""
    monkeypatch.setattr(monitor, "YIELD_TO_STARTS", 0.3)
    report, offered = running_monitor
    START_BACKLOG.add()
    try:
        sent = report(43)
        assert _until(lambda: offered, 3.0)
        assert offered[0][0] == [43] and 0.25 <= offered[0][1] - sent < 2.0
    finally:
        START_BACKLOG.done()


@pytest.fixture
def collecting_monitor(monkeypatch):
    """A step monitor's datagram thread alone, collecting through a stand-in collect_many that
    spends `cost` seconds of its thread's CPU and answers whether its round advanced a run."""
    rounds: list[dict] = []
    plan = {"cost": 0.05, "advanced": False}

    def collect_many(ids):
        began = time.monotonic()
        spent = time.thread_time()
        while time.thread_time() - spent < plan["cost"]:
            pass
        rounds.append({"ids": sorted(ids), "began": began, "ended": time.monotonic()})
        return plan["advanced"]

    monkeypatch.setattr(engine, "offer_to_collector", lambda ids: False)
    monkeypatch.setattr(engine, "collect_many", collect_many)
    mon = monitor.StepMonitor()
    mon.thread.start()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def report(*task_ids: int) -> None:
        for task_id in task_ids:
            sender.sendto(json.dumps({"task_run": task_id}).encode(), (mon.host, mon.port))

    try:
        yield report, rounds, plan
    finally:
        sender.close()
        mon._stop.set()
        mon.thread.join(5)
        mon.sock.close()


def test_after_a_round_that_advanced_nothing_the_monitor_rests_and_collects_what_ended_together(
        collecting_monitor, monkeypatch):
    """A wide stage's steps end one by one while the rest of it is still starting: collecting each
    alone cost ~5 ms of CPU a step, and no round could start anything. After such a round the
    monitor rests REST_AFTER_ROUND times its CPU, and the steps that ended meanwhile are one round;
    after a round that dispatched (a chain's step) the next result is collected as it comes."""
    report, rounds, plan = collecting_monitor
    monkeypatch.setattr(monitor, "REST_AFTER_ROUND", 4.0)  # a rest of 200 ms after a 50 ms round
    monkeypatch.setattr(monitor, "REST_AT_MOST", 1.0)
    assert START_BACKLOG.wait_clear(10)
    report(1)
    assert _until(lambda: rounds, 5.0)
    report(2, 3, 4)  # during the first round's rest (4 x 50 ms of CPU)
    assert _until(lambda: len(rounds) == 2, 5.0)
    assert rounds[1]["ids"] == [2, 3, 4], rounds
    assert rounds[1]["began"] - rounds[0]["ended"] >= 0.1, rounds
    plan["advanced"] = True
    report(5)  # after the second round's rest: this one advances
    assert _until(lambda: len(rounds) == 3, 5.0)
    sent = time.monotonic()
    report(6)  # right after a round that advanced: no rest
    assert _until(lambda: len(rounds) == 4, 5.0)
    assert rounds[3]["ids"] == [6] and rounds[3]["began"] - sent < 0.2, rounds


def test_the_monitors_rest_is_bounded_after_a_big_round(collecting_monitor, monkeypatch):
    """A stage's hundred collected in one round cost ~100 ms of CPU: resting a multiple of that
    kept the result that ends the stage (and starts the next) waiting for hundreds of ms."""
    report, rounds, plan = collecting_monitor
    monkeypatch.setattr(monitor, "REST_AFTER_ROUND", 10.0)  # 1 s after this 100 ms round, unbounded
    monkeypatch.setattr(monitor, "REST_AT_MOST", 0.05)
    plan["cost"] = 0.1
    assert START_BACKLOG.wait_clear(10)
    report(1)
    assert _until(lambda: rounds, 5.0)
    report(2)
    assert _until(lambda: len(rounds) == 2, 5.0)
    assert rounds[1]["began"] - rounds[0]["ended"] < 0.6, rounds
