"""Flink jobs on the managed local session cluster: the check, jar jobs (batch, streaming,
failing), cancel, stop with a savepoint and start from it, PyFlink jobs, and bad input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scheduler.base import ExecutorError, JobSpec, JobState
from scheduler.flink import FlinkExecutor
from tests.flink.conftest import finished, running, taskmanager_counts, wait_for

pytestmark = pytest.mark.flink
NS = "flink-jobs-test"


def test_check_reports_version_task_managers_and_slots(flink: FlinkExecutor):
    report = flink.check()
    assert report["reachable"], report
    assert report["server_version"] == "2.3.0"
    assert report["flink"]["taskmanagers"] == 1
    assert report["flink"]["slots_total"] == 2
    assert report["flink"]["managed"] is True
    assert report["flink"]["processes"] == {"jobmanager": "running", "taskmanager": "running"}
    assert report["features"]["savepoints"] is True and report["features"]["steps"] is True  # the flink action
    assert flink.snapshot()["nodes"][0]["labels"]["flink/slots"] == "2"


def test_session_processes_are_sandboxed_and_listen_on_loopback(flink: FlinkExecutor):
    from scheduler.local.sandbox import isolation

    session = flink.session
    assert session.rest_url.startswith("http://127.0.0.1:")
    conf = (session.dir / "run" / "conf" / "config.yaml").read_text()
    assert "rest.bind-address: 127.0.0.1" in conf and "jobmanager.memory.process.size: 1024m" in conf
    if not isolation().enabled:
        pytest.skip("no sandbox on this machine")
    conf_dir = str(session.dir / "run" / "conf")
    javas = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if "java" in cmdline and conf_dir in cmdline:
            role = "jobmanager" if "StandaloneSessionClusterEntrypoint" in cmdline else "taskmanager"
            javas[role] = int(next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:")))
    assert set(javas) == {"jobmanager", "taskmanager"}, javas
    assert all(uid >= isolation().uid_base for uid in javas.values()), javas  # a tenant uid, never root


def test_batch_jar_job_finishes_and_a_second_submit_finds_it(flink: FlinkExecutor, count_jar: Path):
    job = JobSpec(name="batch-count", namespace=NS, command=["flink", "run", "-c", "Count", "count.jar", "batch", "b1"],
                  workdir=str(count_jar.parent))
    first = flink.run_job(job)
    assert first.state in (JobState.PENDING, JobState.RUNNING, JobState.SUCCEEDED)
    done = finished(flink, "batch-count", NS)
    assert done.state is JobState.SUCCEEDED, done
    again = flink.run_job(job)  # same name: the same job, nothing submitted twice
    assert again.state is JobState.SUCCEEDED
    assert sum(1 for j in flink.rest().jobs() if j["jid"] == flink.jobs().record("batch-count", NS)["job_id"]) == 1
    assert any("FINISHED" in line.text for line in flink.job_logs("batch-count", NS))


def test_streaming_job_stops_with_a_savepoint_and_the_next_one_counts_on(flink: FlinkExecutor, count_jar: Path):
    workdir = str(count_jar.parent)
    flink.run_job(JobSpec(name="stream-1", namespace=NS, workdir=workdir,
                          command=["-c", "Count", "count.jar", "stream", "s1"]))
    running(flink, "stream-1", NS)
    wait_for(lambda: len(taskmanager_counts(flink, "s1")) >= 20, 60, "20 counts")
    savepoint = flink.stop_job("stream-1", NS)
    assert savepoint.startswith("file:") and Path(savepoint.removeprefix("file:")).is_dir()
    stopped = finished(flink, "stream-1", NS)
    assert stopped.state is JobState.SUCCEEDED and savepoint in stopped.message
    printed = taskmanager_counts(flink, "s1")
    before, lines = max(printed), len(printed)
    flink.run_job(JobSpec(name="stream-2", namespace=NS, workdir=workdir,
                          command=["-s", savepoint, "-c", "Count", "count.jar", "stream", "s1"]))
    running(flink, "stream-2", NS)
    wait_for(lambda: len(taskmanager_counts(flink, "s1")) > lines + 10, 60, "more counts")
    after = taskmanager_counts(flink, "s1")[lines:]
    # carried on from the savepoint's count (the first line retracts it), did not start again at 1
    assert min(after) >= before and max(after) > before + 3, (before, after)
    flink.cancel_job("stream-2", NS)
    assert finished(flink, "stream-2", NS).state is JobState.CANCELLED
    with pytest.raises(ExecutorError, match="only a RUNNING job"):
        flink.stop_job("stream-2", NS)


def test_failing_job_reports_restarting_then_failed_with_its_exception(flink: FlinkExecutor, count_jar: Path):
    flink.run_job(JobSpec(name="fails", namespace=NS, workdir=str(count_jar.parent),
                          command=["-c", "Count", "count.jar", "fail", "f1"]))
    seen = wait_for(lambda: flink.jobs().flink_state("fails", NS) in ("RESTARTING", "FAILING", "FAILED")
                    and flink.job_status("fails", NS), 90, "the job to fail")
    assert "NumberFormatException" in seen.message or "cast" in seen.message.lower(), seen.message
    done = finished(flink, "fails", NS)
    assert done.state is JobState.FAILED and done.message.startswith("FAILED: ")


@pytest.mark.parametrize("command, error", [
    (["flink", "run", "-c", "Count", "/etc/passwd.jar"], "outside the job's working directory"),
    (["flink", "run", "-c", "Count", "../count.jar"], "outside the job's working directory"),
    (["flink", "run", "--yarn", "x.jar"], "unknown option '--yarn'"),
    (["flink", "run", "-p", "0", "x.jar"], "parallelism must be"),
    (["flink", "run", "-D$internal.pipeline.job-id=00", "x.jar"], "the cluster's own setting"),
    (["flink", "run", "-c", "Count"], "names no jar file"),
])
def test_bad_commands_are_refused_and_submit_nothing(flink: FlinkExecutor, count_jar: Path, command, error):
    before = len(flink.rest().jobs())
    with pytest.raises(ExecutorError, match=error.replace("$", r"\$")):
        flink.run_job(JobSpec(name="bad", namespace=NS, workdir=str(count_jar.parent), command=command))
    assert len(flink.rest().jobs()) == before
    assert flink.job_status("bad", NS).state is JobState.MISSING


def test_steps_other_than_the_flink_action_are_refused(flink: FlinkExecutor):
    from scheduler.base import StepJob

    with pytest.raises(ExecutorError, match="is a 'custom-script' step, which runs on the workspace's main cluster"):
        flink.start_step(StepJob(name="s", namespace=NS, spec={"type": "custom-script", "alias": "s"}))
