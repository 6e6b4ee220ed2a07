"""Jobs as processes (deterministic names, status, logs, cancel, timeout) and scheduled jobs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from scheduler.base import ExecutorError, JobSpec, JobState
from scheduler.local.cron import due_minute, parse_cron
from tests.local.conftest import group_of, wait_for


def finished(executor, name, namespace=""):
    return wait_for(lambda: (s := executor.job_status(name, namespace)).state.finished and s, what=f"job {name}")


def test_job_status_and_logs(executor):
    job = JobSpec(name="run-7-build-1", command=["/bin/sh", "-c", "echo hello; echo oops >&2; exit 3"])
    first = executor.run_job(job)
    assert first.state in (JobState.PENDING, JobState.RUNNING)  # accepted; a starter thread forks it
    status = finished(executor, job.name)
    assert status.state is JobState.FAILED and status.exit_code == 3 and "exit 3" in status.message
    assert status.started and status.finished and status.finished >= status.started
    lines = list(executor.job_logs(job.name))
    # stdout and stderr are two pipes: their relative order is not guaranteed, the numbering is.
    assert sorted(line.number for line in lines) == [1, 2]
    assert {(line.text, line.stream) for line in lines} == {("hello", "stdout"), ("oops", "stderr")}
    assert {line.source for line in lines} == {job.name}
    # Same name again: the existing status, never a second run.
    again = executor.run_job(job)
    assert again == status
    assert len(list(executor.job_logs(job.name))) == 2


def test_finished_jobs_leave_memory_and_are_answered_from_their_record(executor, monkeypatch):
    """A finished job's record is dropped from the executor's memory after a while (every step of
    every run stayed there for the process's life); its status, and a second start of the same
    job, are then answered from its job.json: still the one run, never a second."""
    from scheduler.local import executor as executor_mod

    job = JobSpec(name="run-9-once-1", command=["/bin/sh", "-c", "echo ran"])
    executor.run_job(job)
    status = finished(executor, job.name)
    assert status.state is JobState.SUCCEEDED and ("", job.name) in executor.jobs
    monkeypatch.setattr(executor_mod, "FINISHED_JOB_MEMORY", 0.0)
    monkeypatch.setattr(executor_mod, "FORGET_INTERVAL", 0.0)
    executor.run_job(JobSpec(name="other", command=["sleep", "5"]))  # a running job: the pass goes on
    wait_for(lambda: executor.job_status("other").state is JobState.RUNNING, what="the other job running")
    executor.supervise_jobs()
    assert ("", job.name) not in executor.jobs
    assert executor.job_status(job.name) == status
    assert executor.run_job(job) == status
    assert [line.text for line in executor.job_logs(job.name)] == ["ran"]  # ran once
    executor.cancel_job("other")


def test_job_success_env_workdir_and_follow(executor, tmp_path):
    job = JobSpec(name="ok", command=["/bin/sh", "-c", "sleep 0.3; echo $GREETING; pwd"],
                  envs={"GREETING": "hi"}, workdir=str(tmp_path))
    executor.run_job(job)
    followed = [line.text for line in executor.job_logs("ok", follow=True)]  # ends when the job does
    assert followed == ["hi", str(tmp_path)]
    assert executor.job_status("ok").state is JobState.SUCCEEDED
    assert executor.job_status("nope").state is JobState.MISSING


def test_cancel_and_timeout(executor):
    executor.run_job(JobSpec(name="long", command=["sleep", "60"], namespace="ns1"))
    executor.cancel_job("long", "ns1")
    assert finished(executor, "long", "ns1").state is JobState.CANCELLED
    executor.run_job(JobSpec(name="slow", command=["sleep", "60"], timeout=1))
    status = finished(executor, "slow")
    assert status.state is JobState.FAILED and "timed out" in status.message


def test_a_job_cancelled_before_it_started_never_runs(executor, tmp_path, monkeypatch):
    import threading

    from scheduler.local import executor as executor_mod

    gate = threading.Event()
    real_spawn = executor_mod.spawn

    def held_spawn(*args, **kwargs):
        gate.wait(10)
        return real_spawn(*args, **kwargs)

    monkeypatch.setattr(executor_mod, "spawn", held_spawn)  # hold the starter: the job stays pending
    marker = tmp_path / "ran"
    status = executor.run_job(JobSpec(name="held", command=["/bin/sh", "-c", f"touch {marker}"]))
    assert status.state is JobState.PENDING
    assert executor.job_status("held").state is JobState.PENDING
    executor.cancel_job("held")
    gate.set()
    assert finished(executor, "held").state is JobState.CANCELLED
    executor._starter.submit(lambda: None).result(5)  # the starter has looked at it
    assert not marker.exists()


def test_a_pending_job_of_a_stopped_process_is_forgotten_and_can_start_again(tmp_path, monkeypatch):
    """The console accepted a job and stopped before starting it: the next one re-adopting the
    root reports it MISSING (the engine then starts it again), never half-started."""
    from scheduler.local import LocalExecutor

    first = LocalExecutor(tmp_path / "root", search_path=[])
    monkeypatch.setattr(first, "_spawn_job", lambda *args: None)  # the process "stops" before the start
    assert first.run_job(JobSpec(name="step", command=["true"])).state is JobState.PENDING
    first.close()
    second = LocalExecutor(tmp_path / "root", search_path=[])
    try:
        assert second.job_status("step").state is JobState.MISSING
        second.run_job(JobSpec(name="step", command=["true"]))
        assert finished(second, "step").state is JobState.SUCCEEDED
    finally:
        second.destroy_all()
        second.close()


def test_placed_files_are_written_whole_only_when_absent(tmp_path):
    import os
    import threading

    from scheduler.local.state import place_file

    spec = tmp_path / "steps" / "a-1" / "spec.json"
    place_file(str(spec), '{"n": 1}')  # the folder is made
    assert spec.read_text() == '{"n": 1}' and oct(spec.stat().st_mode & 0o777) == "0o600"
    place_file(str(spec), '{"n": 2}')  # a relaunch keeps the attempt's first spec
    assert spec.read_text() == '{"n": 1}'
    assert os.listdir(spec.parent) == ["spec.json"]  # no temporary file left behind

    racing = tmp_path / "race.json"
    barrier = threading.Barrier(4)

    def put(n):
        barrier.wait()
        place_file(str(racing), str(n) * 10_000)

    threads = [threading.Thread(target=put, args=(n,)) for n in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    text = racing.read_text()
    assert len(text) == 10_000 and len(set(text)) == 1  # one writer's whole file, never a mix
    assert sorted(os.listdir(tmp_path)) == ["race.json", "steps"]


def test_a_jobs_files_are_placed_before_it_starts_and_kept_when_it_starts_again(executor, tmp_path):
    """A step's spec reaches the agent as a placed file (mode 0600: it holds secrets), written by
    the starter threads, not by the caller accepting the job."""
    spec = tmp_path / "steps" / "a-1" / "spec.json"
    job = JobSpec(name="reads", command=["/bin/sh", "-c", f"cat {spec}; echo; stat -c %a {spec}"],
                  files={str(spec): '{"n": 1}'})
    executor.run_job(job)
    assert finished(executor, "reads").state is JobState.SUCCEEDED
    assert [line.text for line in executor.job_logs("reads")] == ['{"n": 1}', "600"]
    executor.run_job(JobSpec(name="reads-2", command=["cat", str(spec)], files={str(spec): '{"n": 2}'}))
    assert finished(executor, "reads-2").state is JobState.SUCCEEDED
    assert [line.text for line in executor.job_logs("reads-2")] == ['{"n": 1}']  # the first placed stays
    with pytest.raises(ExecutorError, match="must be absolute, not spec.json"):
        executor.run_job(JobSpec(name="relative", command=["true"], files={"spec.json": "{}"}))
    assert executor.job_status("relative").state is JobState.MISSING  # refused: nothing accepted


def test_job_without_command(executor):
    with pytest.raises(ExecutorError, match="no command"):
        executor.run_job(JobSpec(name="empty", image="busybox"))


class FakeClock:
    def __init__(self, when: dt.datetime) -> None:
        self.now = when.timestamp()

    def __call__(self) -> float:
        return self.now


CRON_SPEC = """
version: "2.0"
envs: {WHO: cron}
jobs:
  report:
    image: busybox
    cmd: echo "report by $WHO in $DICE_WORKSPACE"
    schedule: "*/5 * * * *"
"""


def test_cron_job_fires_on_the_fake_clock(make_executor, runtime):
    clock = FakeClock(dt.datetime(2026, 3, 2, 12, 3, 30))
    executor = make_executor(clock=clock)
    executor.apply(group_of(CRON_SPEC, runtime))
    executor.tick()
    assert executor.cron_runs(runtime, "report") == []
    clock.now = dt.datetime(2026, 3, 2, 12, 5, 10).timestamp()
    executor.tick()
    executor.tick()  # the same minute again: no second run
    runs = executor.cron_runs(runtime, "report")
    assert [r.name for r in runs] == [f"{runtime.namespace}-report-202603021205"]
    done = finished(executor, runs[0].name, runtime.namespace)
    assert done.state is JobState.SUCCEEDED
    assert [line.text for line in executor.job_logs(runs[0].name, runtime.namespace)] == ["report by cron in DEV"]
    assert any(e.reason == "CronFired" for e in executor.events(runtime, "report"))


def test_cron_parser():
    at = dt.datetime(2026, 3, 2, 12, 5)  # a Monday
    assert parse_cron("*/5 * * * *").matches(at)
    assert not parse_cron("*/7 * * * *").matches(at)
    assert parse_cron("5 12 * * mon").matches(at)
    assert parse_cron("5 12 * * 1-5").matches(at)
    assert not parse_cron("5 12 * * 0,6").matches(at)
    assert parse_cron("5 12 15 * 1").matches(at)  # day-of-month OR day-of-week
    assert parse_cron("0 0 1 1 ?").matches(dt.datetime(2027, 1, 1))
    assert parse_cron("@hourly").matches(dt.datetime(2026, 1, 1, 7, 0))
    assert parse_cron("0 0 * * 7").matches(dt.datetime(2026, 3, 1))  # 7 is Sunday too
    for bad in ("* * *", "61 * * * *", "*/0 * * * *", "x * * * *"):
        with pytest.raises(ExecutorError):
            parse_cron(bad)
    start = dt.datetime(2026, 3, 2, 11, 58).timestamp()
    assert due_minute(parse_cron("*/5 * * * *"), start, at.timestamp()) == at
    assert due_minute(parse_cron("30 * * * *"), start, at.timestamp()) is None


def _ppid(pid: int) -> int:
    from pathlib import Path

    raw = Path(f"/proc/{pid}/stat").read_text()
    return int(raw[raw.rfind(")") + 2:].split()[1])


def test_processes_are_started_by_the_starter_which_is_replaced_when_it_dies(executor, monkeypatch):
    """The console never forks: the shims' parent is the starter process; a starter killed with
    SIGKILL is replaced at the next start, and what it started keeps running. (The Python shim's
    starter; the compiled shim's waiting shim: tests/local/test_waiting_shim.py.)"""
    import os
    import signal

    from scheduler.local.supervisor import STARTER

    monkeypatch.setenv("DICE_LOCAL_SHIM", "python")
    executor.run_job(JobSpec(name="first", command=["sleep", "30"]))
    first = wait_for(lambda: executor.jobs[("", "first")].get("pid"), what="the first job's process")
    assert STARTER.proc is not None and _ppid(first) == STARTER.proc.pid != os.getpid()
    old = STARTER.proc.pid
    os.kill(old, signal.SIGKILL)
    STARTER.proc.wait(5)
    executor.run_job(JobSpec(name="second", command=["/bin/sh", "-c", "echo again"]))
    assert finished(executor, "second").state is JobState.SUCCEEDED
    assert STARTER.proc.pid != old
    assert executor.job_status("first").state is JobState.RUNNING  # survived its starter
    executor.cancel_job("first")
    assert finished(executor, "first").state is JobState.CANCELLED


def test_a_job_that_cannot_start_fails_with_the_reason(executor, monkeypatch):
    from scheduler.local import supervisor

    # Without the process starter (DICE_LOCAL_SPAWNER=0) the shim is exec'd here: make that fail.
    # (The starter's own refusals: tests/local/test_spawner.py; the compiled shim's:
    # tests/local/test_waiting_shim.py.)
    monkeypatch.setenv("DICE_LOCAL_SHIM", "python")
    monkeypatch.setattr(supervisor.STARTER, "enabled", False)
    monkeypatch.setattr(supervisor, "SHIM", "/nonexistent/shim.py")  # the shim's python cannot open it
    monkeypatch.setattr(supervisor, "priority_prefix", lambda priority: ["/nonexistent/chrt"])
    executor.run_job(JobSpec(name="broken", command=["true"]))
    status = finished(executor, "broken")
    assert status.state is JobState.FAILED and "could not start" in status.message
    assert "No such file" in status.message or "nonexistent" in status.message


def test_jobs_run_at_idle_priority_and_a_bad_priority_is_refused(executor, tmp_path):
    import os

    executor.run_job(JobSpec(name="idle", command=["sleep", "30"]))
    pid = wait_for(lambda: executor.jobs[("", "idle")].get("pid"), what="the job's process")
    # Read once the command runs (its pid file): the process starter answers the shim's pid just
    # before the shim takes its priority, so a read at once saw the normal one now and then.
    pidfile = Path(executor.jobs[("", "idle")]["pidfile"])
    command = wait_for(lambda: pidfile.exists() and json.loads(pidfile.read_text())["pid"], what="the command")
    for process in (pid, command):  # the shim, and all it starts, yield to the console
        assert os.sched_getscheduler(process) == os.SCHED_IDLE
    executor.cancel_job("idle")
    assert finished(executor, "idle").state is JobState.CANCELLED

    from scheduler.local import LocalExecutor

    with pytest.raises(ValueError, match="job priority 'urgent': use idle, normal or a nice value 1-19"):
        LocalExecutor(tmp_path / "other", search_path=[], job_priority="urgent")
