"""`engine: flink` services of a runtime on the managed session cluster: kept running, health
from the job's state, and upgrade, scale and rollback through a savepoint (the counting job's
count continues across each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from diceyml import parse_dice_yml
from scheduler.base import ExecutorError, Health, RuntimeRef, ServiceGroup
from scheduler.flink import FlinkExecutor
from tests.flink.conftest import taskmanager_counts, wait_for

pytestmark = pytest.mark.flink

SPEC = """
version: "2.0"
services:
  counter:
    engine: flink
    cmd: flink run -c Count count.jar {mode} {tag}
    deployments:
      replicas: {replicas}
"""


def group(runtime: RuntimeRef, jar: Path, release: str, replicas: int = 1, mode: str = "stream",
          tag: str = "svc") -> ServiceGroup:
    spec = parse_dice_yml(SPEC.format(mode=mode, tag=tag, replicas=replicas), workspace=runtime.workspace)
    return ServiceGroup(runtime, spec, release=release, workdir=str(jar.parent))


def healthy(flink: FlinkExecutor, runtime: RuntimeRef):
    return wait_for(lambda: (s := flink.status(runtime)).health is Health.HEALTHY and s, 90, "a healthy service")


def counts_go_on(flink: FlinkExecutor, tag: str, lines: int, before: int) -> list[int]:
    wait_for(lambda: len(taskmanager_counts(flink, tag)) > lines + 10, 60, "more counts")
    after = taskmanager_counts(flink, tag)[lines:]
    assert min(after) >= before and max(after) > before + 3, (before, after[:10])
    return after


def test_upgrade_scale_and_rollback_carry_the_state_over(flink: FlinkExecutor, count_jar: Path):
    runtime = RuntimeRef("acme", "shop", "upgrades", "DEV", "main")
    try:
        flink.apply(group(runtime, count_jar, "r1"))
        status = healthy(flink, runtime)
        assert status.services["counter"].ready == 1
        flink.apply(group(runtime, count_jar, "r1"))  # the same again: the same job keeps running
        assert flink.status(runtime).services["counter"].replicas[0].name == "counter-1"
        wait_for(lambda: len(taskmanager_counts(flink, "svc")) >= 10, 60, "counts")

        # upgrade: a new release stops the job with a savepoint and starts from it
        printed = taskmanager_counts(flink, "svc")
        flink.apply(group(runtime, count_jar, "r2"))
        assert healthy(flink, runtime).services["counter"].replicas[0].name == "counter-2"
        after = counts_go_on(flink, "svc", len(printed), max(printed))

        # scale: the parallelism changes the same way
        printed = taskmanager_counts(flink, "svc")
        flink.scale(runtime, "counter", 2)
        job = flink.jobs().record("counter-3", runtime.namespace)["job_id"]
        plan = flink.rest().call("GET", f"/jobs/{job}/plan")["plan"]["nodes"]
        assert max(node["parallelism"] for node in plan) == 2
        assert healthy(flink, runtime).services["counter"].desired == 2
        counts_go_on(flink, "svc", len(printed), max(printed))

        # rollback: the earlier release again, still from a savepoint
        printed = taskmanager_counts(flink, "svc")
        flink.apply(group(runtime, count_jar, "r1"))
        healthy(flink, runtime)
        counts_go_on(flink, "svc", len(printed), max(printed))
        reasons = [e.reason for e in flink.events(runtime, "counter")]
        assert reasons.count("Savepoint") == 3 and reasons.count("Started") == 4, reasons
        assert after
    finally:
        flink.destroy(runtime)
    assert flink.status(runtime).health is Health.MISSING


def test_a_runtime_destroyed_and_deployed_again_under_its_name_runs_a_new_job(flink: FlinkExecutor,
                                                                               count_jar: Path):
    """The old jobs' records and the cluster's memory of their ids outlive the runtime: the new
    one must not take the first job's name (its record would stand for the new job, and Flink
    refuses a known job id)."""
    runtime = RuntimeRef("acme", "shop", "again", "DEV", "main")
    try:
        flink.apply(group(runtime, count_jar, "r1", tag="again"))
        first = healthy(flink, runtime).services["counter"].replicas[0].name
        flink.destroy(runtime)
        flink.apply(group(runtime, count_jar, "r1", tag="again"))
        second = healthy(flink, runtime).services["counter"].replicas[0].name
        assert second != first and second.startswith("counter-"), (first, second)
    finally:
        flink.destroy(runtime)


def test_a_failing_job_is_degraded_with_its_exception(flink: FlinkExecutor, count_jar: Path):
    runtime = RuntimeRef("acme", "shop", "broken", "DEV", "main")
    try:
        flink.apply(group(runtime, count_jar, "r1", mode="fail", tag="bad"))
        status = wait_for(lambda: (s := flink.status(runtime)).health is Health.DEGRADED and s, 90, "degraded")
        reason = status.services["counter"].reason
        assert "NumberFormatException" in reason or "cast" in reason.lower(), reason
    finally:
        flink.destroy(runtime)


@pytest.mark.parametrize("cmd, error", [
    ("flink run -p 4 -c Count count.jar", "deployments.replicas"),
    ("flink run -s /tmp/x -c Count count.jar", "the savepoint a job starts from"),
    ("flink run --nope count.jar", "unknown option"),
])
def test_bad_service_commands_change_nothing(flink: FlinkExecutor, count_jar: Path, cmd: str, error: str):
    runtime = RuntimeRef("acme", "shop", "bad", "DEV", "main")
    spec = parse_dice_yml(f"version: '2.0'\nservices:\n  c:\n    engine: flink\n    cmd: {cmd}\n")
    with pytest.raises(ExecutorError, match=error):
        flink.apply(ServiceGroup(runtime, spec, workdir=str(count_jar.parent)))
    assert flink.status(runtime).health is Health.MISSING


def test_ordinary_services_are_refused(flink: FlinkExecutor):
    runtime = RuntimeRef("acme", "shop", "web", "DEV", "main")
    spec = parse_dice_yml("version: '2.0'\nservices:\n  web:\n    cmd: python -m http.server\n")
    with pytest.raises(ExecutorError, match="has no `engine: flink`"):
        flink.apply(ServiceGroup(runtime, spec))


def test_the_flink_stream_example_runs_as_a_pyflink_service(flink: FlinkExecutor, tmp_path: Path):
    import shutil

    release = tmp_path / "release"
    shutil.copytree(Path(__file__).resolve().parents[2] / "examples" / "flink-stream", release)
    runtime = RuntimeRef("acme", "shop", "clicks", "DEV", "main")
    spec = parse_dice_yml((release / "dice.yml").read_text(), workspace="DEV")
    try:
        flink.apply(ServiceGroup(runtime, spec, release="r1", workdir=str(release)))
        status = wait_for(lambda: (s := flink.status(runtime)).health is Health.HEALTHY and s, 150, "healthy")
        assert status.services["clicks"].replicas[0].name == "clicks-1"
        wait_for(lambda: len(taskmanager_counts(flink, "clicks")) >= 3, 60, "counts from the example")
        # the PyFlink client ran sandboxed as the tenant; its output is the start of the job's log
        text = "\n".join(line.text for line in flink.logs(runtime, "clicks"))
        assert "has been submitted with JobID" in text and "RUNNING" in text, text[-1500:]
    finally:
        flink.destroy(runtime)
