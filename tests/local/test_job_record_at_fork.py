"""A process supervising the local cluster killed at the fork of a job (a pipeline step), before
it wrote the job's pid: the job's record is on disk from before the fork, so the process that
takes over finds it and never starts the job a second time (counted by the job's side effect).

The kill is injected: a real process (not this test's) runs the executor with `spawn` wrapped to
SIGKILL itself right after the fork (or right before it), the one moment a real kill cannot be
aimed at on demand."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from scheduler.base import JobSpec, JobState
from scheduler.local import executor as executor_mod
from tests.local.conftest import ROOT, wait_for

KILLED_AT = textwrap.dedent("""
    import os, signal, sys
    from scheduler.base import JobSpec
    from scheduler.local import executor as ex
    from scheduler.local.executor import LocalExecutor

    real, when = ex.spawn, sys.argv[2]

    def spawn(*args, **kwargs):
        if when == "before-fork":
            os.kill(os.getpid(), signal.SIGKILL)
        real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)  # forked: killed before the pid is written

    ex.spawn = spawn
    executor = LocalExecutor(sys.argv[1])
    executor.run_job(JobSpec(name="once", command=["/bin/sh", "-c", sys.argv[3]], namespace="pipelines-1",
                             workdir=sys.argv[4], tenant="acme"))
    signal.pause()
""")


def _killed_while_starting(local_root, work, when: str, command: str) -> None:
    proc = subprocess.run([sys.executable, "-c", KILLED_AT, str(local_root), when, command, str(work)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr[-2000:]


def _spec(command: str, work) -> JobSpec:
    return JobSpec(name="once", command=["/bin/sh", "-c", command], namespace="pipelines-1", workdir=str(work),
                   tenant="acme")


def test_a_job_forked_by_a_killed_supervisor_is_never_started_again(make_executor, local_root, tmp_path):
    work = tmp_path / "work"
    ran = work / "ran.txt"  # in its workdir: what its sandbox lets it write
    command = "sleep 1; echo ran >> ran.txt"
    _killed_while_starting(local_root, work, "after-fork", command)

    executor = make_executor()  # takes over the root, as a standby worker does
    status = executor.run_job(_spec(command, work))  # the owner asks again: it is there already
    assert status.state is JobState.RUNNING
    wait_for(lambda: executor.job_status("once", "pipelines-1").state.finished, 30, "the job's end")
    final = executor.job_status("once", "pipelines-1")
    assert final.state is JobState.SUCCEEDED, final
    assert executor.run_job(_spec(command, work)).state is JobState.SUCCEEDED
    assert ran.read_text().splitlines() == ["ran"]  # its side effect happened once


def test_a_job_whose_start_was_cut_before_the_fork_is_started_once_when_asked_again(make_executor, local_root,
                                                                                   tmp_path):
    """Killed before the fork, nothing of the job ran: the process taking over takes the start's
    claim itself (its shim never did), so the job is forgotten at once and its owner's next ask
    starts it: it runs once, not never (a pipeline whose worker died there finishes)."""
    work = tmp_path / "work"
    ran = work / "ran.txt"
    command = "echo ran >> ran.txt"
    _killed_while_starting(local_root, work, "before-fork", command)
    record = json.loads((local_root / "jobs" / "pipelines-1" / "once" / "job.json").read_text())
    assert record["launched"] and record["claim"] and not record.get("pid")

    executor = make_executor()
    assert ("pipelines-1", "once") not in executor.jobs  # decided by the claim, not after a grace
    claim = Path(record["claim"])
    assert claim.exists() and claim.read_text() == ""  # taken by the console: a late shim runs nothing
    assert not ran.exists()
    executor.run_job(_spec(command, work))  # the owner asks again
    wait_for(lambda: executor.job_status("once", "pipelines-1").state.finished, 15, "the job's end")
    assert executor.job_status("once", "pipelines-1").state is JobState.SUCCEEDED
    assert ran.read_text().splitlines() == ["ran"]


def test_a_shim_held_before_its_pidfile_past_the_grace_is_followed_and_its_job_runs_once(
        make_executor, local_root, tmp_path, monkeypatch):
    """The hole LAUNCH_GRACE left: a shim slower than the grace from its fork to its pidfile (an
    overloaded machine) was taken for never forked, and its job started a second time. Here the
    shim is held (its log is a FIFO nobody opens, so it blocks there, after its claim and before
    its pidfile) well past a grace of 0.3 s, under a console that took over: the job stays running,
    followed by the shim's claim, a second ask does not start it again, and released, it runs once."""
    work = tmp_path / "work"
    ran = work / "ran.txt"
    command = "echo ran >> ran.txt"
    jdir = local_root / "jobs" / "pipelines-1" / "once"
    jdir.mkdir(parents=True)
    os.mkfifo(jdir / "job.log")
    _killed_while_starting(local_root, work, "after-fork", command)
    record = json.loads((jdir / "job.json").read_text())
    claim = Path(record["claim"])
    wait_for(claim.exists, 15, "the shim's claim")
    shim = json.loads(claim.read_text())["shim"]
    try:
        monkeypatch.setattr(executor_mod, "LAUNCH_GRACE", 0.3)

        executor = make_executor()
        assert executor.jobs[("pipelines-1", "once")]["pid"] == shim
        assert executor.run_job(_spec(command, work)).state is JobState.RUNNING
        time.sleep(2.0)  # ten supervision passes, each past the grace
        assert time.time() - record["launched"] > 5 * executor_mod.LAUNCH_GRACE
        assert not (jdir / "run" / "job.pid").exists()  # still held before its pidfile
        assert executor.run_job(_spec(command, work)).state is JobState.RUNNING  # not started again
        assert executor.jobs[("pipelines-1", "once")]["pid"] == shim
        assert not ran.exists()

        lines = []
        with open(jdir / "job.log", "wb"):  # the shim's look for its last line number reads nothing
            pass
        reader = threading.Thread(target=lambda: lines.append((jdir / "job.log").read_bytes()), daemon=True)
        reader.start()  # and its log lines go here
        wait_for(lambda: executor.job_status("once", "pipelines-1").state.finished, 30, "the job's end")
        assert executor.job_status("once", "pipelines-1").state is JobState.SUCCEEDED
        assert executor.run_job(_spec(command, work)).state is JobState.SUCCEEDED
        assert ran.read_text().splitlines() == ["ran"]  # once
        reader.join(10)
    finally:  # a failure above leaves the shim held on its FIFO: end it
        with contextlib.suppress(ProcessLookupError):
            os.kill(shim, signal.SIGKILL)


def test_a_shim_that_finds_its_start_claimed_runs_nothing(tmp_path):
    """The other side of the claim: a shim reaching a start the console already gave up (and
    claimed) runs nothing and writes nothing, not even its pidfile or exit status."""
    claim = tmp_path / "job.claim-0"
    claim.write_text("")
    ran = tmp_path / "ran.txt"
    done = subprocess.run(
        [sys.executable, "-S", str(ROOT / "scheduler" / "local" / "shim.py"), "--log", str(tmp_path / "log"),
         "--pidfile", str(tmp_path / "pid"), "--exitfile", str(tmp_path / "exit"), "--claim", str(claim),
         "--", "/bin/sh", "-c", f"echo ran > {ran}"], capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.claim-0"]  # nothing ran, nothing written
    fresh = tmp_path / "fresh" / "job.claim-1"
    fresh.parent.mkdir()
    done = subprocess.run(
        [sys.executable, "-S", str(ROOT / "scheduler" / "local" / "shim.py"), "--log", str(fresh.parent / "log"),
         "--pidfile", str(fresh.parent / "pid"), "--exitfile", str(fresh.parent / "exit"), "--claim", str(fresh),
         "--", "/bin/sh", "-c", f"echo ran > {ran}"], capture_output=True, timeout=30)
    assert done.returncode == 0 and ran.read_text() == "ran\n"
    taken = json.loads(fresh.read_text())
    assert taken["shim"] > 0 and taken["start_time"]  # what a console taking over follows
    assert sorted(p.name for p in fresh.parent.iterdir()) == ["exit", "job.claim-1", "log", "pid"]


@pytest.mark.parametrize("when", ["after-fork"])
def test_the_record_written_at_the_fork_names_the_shim(make_executor, local_root, tmp_path, when):
    """What re-adoption follows: the shim's pid, from the pidfile its shim wrote."""
    work = tmp_path / "work"
    _killed_while_starting(local_root, work, when, "sleep 3")
    executor = make_executor()
    job = executor.jobs[("pipelines-1", "once")]
    wait_for(lambda: executor.jobs[("pipelines-1", "once")].get("pid"), 10, "the shim's pid")
    assert job["state"] == JobState.RUNNING.value and job["start_time"]
    wait_for(lambda: executor.job_status("once", "pipelines-1").state is JobState.SUCCEEDED, 15, "the job's end")
