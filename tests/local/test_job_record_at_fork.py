"""A process supervising the local cluster killed at the fork of a job (a pipeline step), before
it wrote the job's pid: the job's record is on disk from before the fork, so the process that
takes over finds it and never starts the job a second time (counted by the job's side effect).

The kill is injected: a real process (not this test's) runs the executor with `spawn` wrapped to
SIGKILL itself right after the fork (or right before it), the one moment a real kill cannot be
aimed at on demand."""

from __future__ import annotations

import subprocess
import sys
import textwrap

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
                                                                                   tmp_path, monkeypatch):
    """Killed before the fork, nothing of the job ran: once its shim has been looked for
    (LAUNCH_GRACE), the job is missing, and its owner's next ask starts it: it runs once, not never
    (a pipeline whose worker died there finishes)."""
    work = tmp_path / "work"
    ran = work / "ran.txt"
    command = "echo ran >> ran.txt"
    _killed_while_starting(local_root, work, "before-fork", command)
    monkeypatch.setattr(executor_mod, "LAUNCH_GRACE", 1.0)  # how long its shim is looked for

    executor = make_executor()
    assert executor.run_job(_spec(command, work)).state is JobState.RUNNING  # adopted: looked for
    wait_for(lambda: executor.job_status("once", "pipelines-1").state is JobState.MISSING, 15, "the job forgotten")
    assert not ran.exists()
    executor.run_job(_spec(command, work))  # the owner asks again
    wait_for(lambda: executor.job_status("once", "pipelines-1").state.finished, 15, "the job's end")
    assert executor.job_status("once", "pipelines-1").state is JobState.SUCCEEDED
    assert ran.read_text().splitlines() == ["ran"]


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
