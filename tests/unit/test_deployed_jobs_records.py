"""The record of a runtime's data-engine jobs (scheduler/deployedjobs.py) is changed by deploys,
status reads and the beat, often in different processes at once: each change is a
read-modify-write under the record's lock, so two writers racing lose nothing.

The races are real: two forked processes change the same record file at the same time. The
engine here is a small one that keeps its runs as lines of a file (each submission appends one),
so what was submitted can be compared with what was recorded."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from diceyml import parse_dice_yml
from scheduler.base import ExecutorError, Health, JobSpec, JobState, JobStatus, RuntimeRef, ServiceGroup
from scheduler.deployedjobs import RUNS_KEPT, DeployedJobs, RecordStore

RT = RuntimeRef("acme", "shop", "etl", "DEV", "main")
T0 = time.time() // 60 * 60 - 3 * 3600  # a minute three hours ago: the beat's clock, which the jobs deployed now never reach
ROUNDS = 60

fork = multiprocessing.get_context("fork")


class FileEngine(DeployedJobs):
    """An engine whose cluster is a file: a submission appends the run's name (O_APPEND: one
    write each); a run is known once submitted and succeeds at once. `slow` seconds per
    submission stand for a cluster's answer, during which the record is not locked."""

    engine, title = "file", "File"

    def __init__(self, root: Path, slow: float = 0.0):
        super().__init__(root / "records")
        self.cluster = root / "submitted.log"
        self.slow = slow

    def plan(self, group: ServiceGroup) -> dict[str, dict]:
        return {name: self.entry(group, name, JobSpec(name=name, namespace=group.runtime.namespace,
                                                      command=["run", job.cmd]))
                for name, job in sorted(group.spec.jobs.items())}

    def submitted(self) -> list[str]:
        return self.cluster.read_text().split() if self.cluster.exists() else []

    def submit(self, spec: JobSpec) -> None:
        time.sleep(self.slow)
        fd = os.open(self.cluster, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{spec.name}\n".encode())
        finally:
            os.close(fd)

    def run_status(self, run: str, namespace: str) -> JobStatus:
        state = JobState.SUCCEEDED if run in self.submitted() else JobState.MISSING
        return JobStatus(name=run, state=state)

    def cancel_run(self, run: str, namespace: str) -> None:
        raise AssertionError("nothing runs long enough to be cancelled here")


def _group(release: int) -> ServiceGroup:
    """Release `release`: a scheduled job, a run-once job whose command changes with the release,
    and one more scheduled job per release (extra-1 ... extra-N): a lost write shows as one missing."""
    extras = "".join(f"  extra-{i}:\n    cmd: echo {i}\n    schedule: \"0 0 1 1 *\"\n" for i in range(1, release + 1))
    text = (f'version: "2.0"\njobs:\n  nightly:\n    cmd: echo nightly\n    schedule: "* * * * *"\n'
            f"  once:\n    cmd: echo release {release}\n{extras}")
    return ServiceGroup(RT, parse_dice_yml(text, workspace="DEV"), release=f"r{release}")


def _append_many(folder: str, tag: str, count: int, start) -> None:
    store = RecordStore(Path(folder))
    start.wait()
    for i in range(count):
        with store.update(RT.namespace) as record:
            items = record.setdefault("jobs", {}).setdefault("job", {}).setdefault("items", [])
            time.sleep(0.0005)  # a read-modify-write that takes a moment, as a real one does
            items.append(f"{tag}-{i}")


def _race(*writers: tuple) -> None:
    """Each (function, arguments) in a forked process of its own, all let go at once (the last
    argument is the start signal); each must end well."""
    start = fork.Event()
    procs = [fork.Process(target=function, args=(*args, start)) for function, args in writers]
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0


def test_two_processes_updating_one_record_lose_nothing(tmp_path):
    _race(*((_append_many, (str(tmp_path), tag, 150)) for tag in ("a", "b")))
    items = RecordStore(tmp_path).read(RT.namespace)["jobs"]["job"]["items"]
    assert sorted(items) == sorted(f"{tag}-{i}" for tag in ("a", "b") for i in range(150))
    # interleaved: the two really ran at once
    assert items[:150] != [f"a-{i}" for i in range(150)] and items[:150] != [f"b-{i}" for i in range(150)]
    assert oct(os.stat(RecordStore(tmp_path).path(RT.namespace)).st_mode & 0o777) == "0o600"


def _beat(root: str, start) -> None:
    engine = FileEngine(Path(root), slow=0.002)
    start.wait()
    for minute in range(1, ROUNDS + 1):
        engine.fire_schedules(T0 + 60 * minute + 1)


def _deploys(root: str, start) -> None:
    engine = FileEngine(Path(root), slow=0.002)
    start.wait()
    for release in range(1, ROUNDS + 1):
        engine.apply(_group(release))
        engine.status(RT)


def test_the_beat_and_deploys_racing_on_a_record_lose_no_run_and_no_job(tmp_path):
    engine = FileEngine(tmp_path)
    engine.apply(_group(0))
    with engine.records.update(RT.namespace) as record:
        record["jobs"]["nightly"]["last"] = T0  # the schedule's last firing
    _race((_beat, (str(tmp_path),)), (_deploys, (str(tmp_path),)))

    record = engine.records.read(RT.namespace)
    submitted = engine.submitted()
    # the beat: each minute's run submitted exactly once, and the record keeps the latest ones
    nightly = [run for run in submitted if run.startswith("nightly-")]
    minutes = [time.strftime("%Y%m%d%H%M", time.localtime(T0 + 60 * m)) for m in range(1, ROUNDS + 1)]
    assert nightly == [f"nightly-{m}" for m in minutes]
    jobs = record["jobs"]
    assert jobs["nightly"]["runs"] == nightly[-RUNS_KEPT:]
    assert jobs["nightly"]["last"] == T0 + 60 * ROUNDS + 1
    # the deploys: the last release's jobs all there (none dropped by a stale write), each
    # release's run submitted once and recorded
    assert record["release"] == f"r{ROUNDS}"
    assert set(jobs) == {"nightly", "once", *(f"extra-{i}" for i in range(1, ROUNDS + 1))}
    once = [run for run in submitted if run.startswith("once-")]
    assert len(once) == len(set(once)) == ROUNDS + 1
    assert jobs["once"]["runs"] == once[-RUNS_KEPT:] and jobs["once"]["run"] == once[-1]
    assert engine.status(RT).health is Health.HEALTHY


class Refusing(FileEngine):
    def submit(self, spec: JobSpec) -> None:
        if (self.cluster.parent / "refuse").exists():
            raise ExecutorError("the cluster refused it")
        super().submit(spec)


def test_a_refused_run_is_failed_with_the_reason_and_submitted_again_by_the_next_apply(tmp_path):
    engine = Refusing(tmp_path)
    (tmp_path / "refuse").touch()
    with pytest.raises(ExecutorError, match="refused"):
        engine.apply(_group(1))
    found = engine.status(RT)
    run = found.jobs["once"].name
    assert found.jobs["once"].state is JobState.FAILED and "refused" in found.jobs["once"].message
    assert found.health is Health.DEGRADED
    (tmp_path / "refuse").unlink()
    engine.apply(_group(1))  # the same release: its run was never submitted, so it is now
    assert engine.submitted() == [run]
    assert engine.status(RT).health is Health.HEALTHY
    engine.apply(_group(1))  # and never twice
    assert engine.submitted() == [run]


def test_the_jobs_environment_is_sealed_in_the_record(tmp_path):
    group = _group(1)
    secret_env = {"PGPASSWORD": "s3cret-value", "PLAIN": "p"}

    class WithEnv(FileEngine):
        def plan(self, group):
            plans = super().plan(group)
            for plan in plans.values():
                plan["spec"]["envs"] = dict(secret_env)
            return plans

    engine = WithEnv(tmp_path)
    engine.apply(group)
    text = engine.records.path(RT.namespace).read_text()
    assert "s3cret-value" not in text and "PGPASSWORD" not in text
    assert engine.records.read(RT.namespace)["jobs"]["once"]["spec"]["envs"] == secret_env
    with engine.records.update(RT.namespace) as record:  # an update keeps it sealed and whole
        record["jobs"]["once"]["last"] = 1.0
    assert "s3cret-value" not in engine.records.path(RT.namespace).read_text()
    assert engine.records.read(RT.namespace)["jobs"]["once"]["spec"]["envs"] == secret_env


def test_a_runs_name_changes_with_the_jobs_environment_and_tells_nothing_of_it(tmp_path):
    import dataclasses

    from scheduler.deployedjobs import short_hash

    engine = FileEngine(tmp_path)
    group = _group(1)

    def run(envs):
        return engine.entry(group, "once", JobSpec(name="once", namespace=RT.namespace, command=["run"], envs=envs))["run"]

    assert run({"TOKEN": "a"}) == run({"TOKEN": "a"}) != run({"TOKEN": "b"})
    # not the plain hash of what it runs: a guess of the value cannot be checked against the name
    spec = dataclasses.asdict(JobSpec(name="once", namespace=RT.namespace, command=["run"], envs={"TOKEN": "a"}))
    assert run({"TOKEN": "a"}) != f"once-{short_hash({'release': group.release, 'spec': spec})}"


# ---- a console upgrade runs no job of an unchanged release again --------------------------------

ENVS = {"TOKEN": "t0ken-value", "PLAIN": "p", "DICE_WORKSPACE": "DEV", "DICE_CLUSTER_NAME": "local"}


class Rendered(FileEngine):
    """A console's rendering of the jobs: the command and the environment as a version of it makes
    them (an upgrade may change either without the release changing)."""

    def __init__(self, root: Path, command: str = "run", envs: dict | None = None):
        super().__init__(root)
        self.command, self.envs = command, dict(ENVS if envs is None else envs)

    def plan(self, group: ServiceGroup) -> dict[str, dict]:
        return {name: self.entry(group, name, JobSpec(name=name, namespace=group.runtime.namespace,
                                                      command=[self.command, job.cmd], envs=dict(self.envs)))
                for name, job in sorted(group.spec.jobs.items())}


def _old_record(engine: Rendered, group: ServiceGroup, naming: str, envs: dict) -> str:
    """The record an earlier console wrote after running the release's `once` job, and that run
    (already on the cluster): `plain`, the plain hash of the whole spec with the environment in
    clear (until the last session); `keyed`, the same hash over the spec with a keyed digest of the
    environment, which sealed in the record (the last session's)."""
    from scheduler.deployedjobs import short_hash
    from scheduler.local import sealed
    from scheduler.local.state import write_json

    spec = {**dataclasses.asdict(JobSpec(name="once", namespace=RT.namespace, command=["run", "echo release 1"],
                                         envs=envs))}
    material = spec if naming == "plain" else {**spec, "envs": sealed.keyed_digest(engine.folder, envs)}
    run = f"once-{short_hash({'release': group.release, 'spec': material})}"
    stored = spec if naming == "plain" else {**spec, "envs": sealed.seal_value(engine.folder, envs)}
    nightly = {**dataclasses.asdict(JobSpec(name="nightly", namespace=RT.namespace, command=["run", "echo nightly"]))}
    engine.folder.mkdir(parents=True, exist_ok=True)
    write_json(engine.records.path(RT.namespace), {
        "runtime": dataclasses.asdict(RT), "release": group.release,
        "jobs": {"once": {"schedule": "", "spec": stored, "deadline": None, "run": run, "runs": [run],
                          "started": {run: T0}, "last": T0},
                 "nightly": {"schedule": "* * * * *", "spec": nightly, "deadline": None, "run": "", "runs": [],
                             "last": T0}}}, mode=0o600)
    engine.cluster.write_text(f"{run}\n")  # it ran
    return run


@pytest.mark.parametrize("naming", ["plain", "keyed"])
def test_a_run_an_earlier_console_made_for_the_same_release_is_not_made_again(tmp_path, naming):
    group = _group(1)
    # the earlier console spelled DICE_WORKSPACE in lower case (a Spark job's, until the last session)
    engine = Rendered(tmp_path, command="spark-submit")
    old = _old_record(engine, group, naming, {**ENVS, "DICE_WORKSPACE": "dev"})

    engine.apply(group)  # the same release, deployed again by this console (its own rendering)
    assert engine.submitted() == [old], "the release's job ran again after the upgrade"
    record = engine.records.read(RT.namespace)
    assert record["jobs"]["once"]["run"] == old and record["jobs"]["once"]["runs"] == [old]
    found = engine.status(RT)
    assert found.jobs["once"].name == old and found.jobs["once"].state is JobState.SUCCEEDED
    assert found.health is Health.HEALTHY
    engine.apply(group)  # and again: still that run
    assert engine.submitted() == [old] and engine.status(RT).jobs["once"].name == old
    assert "t0ken-value" not in engine.records.path(RT.namespace).read_text()

    # a changed variable is a new run, once; going back to the old value is the old run again
    Rendered(tmp_path, envs={**ENVS, "TOKEN": "rotated"}).apply(group)
    Rendered(tmp_path, envs={**ENVS, "TOKEN": "rotated"}).apply(group)
    changed = engine.submitted()[1:]
    assert len(changed) == 1 and changed[0] != old
    Rendered(tmp_path).apply(group)
    assert engine.submitted() == [old, *changed]
    assert engine.records.read(RT.namespace)["jobs"]["once"]["run"] == old
    # a new release runs it again, once
    engine.apply(_group(2))
    engine.apply(_group(2))
    assert len(engine.submitted()) == 3 and engine.submitted()[-1] not in (old, *changed)


def test_an_earlier_consoles_run_for_another_release_or_environment_is_not_taken(tmp_path):
    engine = Rendered(tmp_path)
    old = _old_record(engine, _group(1), "plain", dict(ENVS))
    engine.apply(_group(2))  # another release
    assert engine.submitted()[0] == old and len(engine.submitted()) == 2

    engine = Rendered(tmp_path / "b", envs={**ENVS, "PLAIN": "changed"})
    old = _old_record(engine, _group(1), "keyed", dict(ENVS))
    engine.apply(_group(1))  # the same release, another environment
    assert engine.submitted()[0] == old and len(engine.submitted()) == 2


def test_a_console_that_renders_a_job_otherwise_does_not_run_it_again(tmp_path):
    """The command (and the platform's DICE_* variables) are the console's rendering of the job,
    not part of what its run stands for."""
    group = _group(1)
    Rendered(tmp_path, command="spark-submit").apply(group)
    Rendered(tmp_path, command="spark-submit --deploy-mode client",
             envs={**ENVS, "DICE_CLUSTER_NAME": "spark-local"}).apply(group)
    assert len(Rendered(tmp_path).submitted()) == 1
