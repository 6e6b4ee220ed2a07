"""The dispatch's bulk paths: the claim of a ready set, per-task updates in one statement, the
per-run cache of what never changes, and one dispatch / one collector at a time per process."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.utils import timezone

from apps.pipelines import engine, services, states
from apps.pipelines import tasks as pipeline_tasks
from apps.pipelines.models import TaskRun, TaskRunTransition

WIDE = """
version: "1.1"
stages:
  - stage:
      - custom-script: {alias: a, commands: ["true"]}
      - custom-script: {alias: b, commands: ["true"]}
      - custom-script: {alias: c, commands: ["true"]}
  - stage:
      - custom-script: {alias: d, commands: ["true"]}
      - custom-script: {alias: e, commands: ["true"]}
"""


def _run(tenant):
    return services.start_run(tenant.owner, tenant.app, source=WIDE)  # queued: nothing starts it here


@pytest.mark.django_db
def test_the_claim_takes_only_rows_still_at_the_status_and_attempt_dispatch_read(tenant_a):
    run = _run(tenant_a)
    rows = {row.alias: row for row in engine._rows(run)}
    # Meanwhile someone else moved b (a retry: attempt 2) and c (skipped).
    TaskRun.objects.filter(run=run, alias="b").update(attempt=2)
    TaskRun.objects.filter(run=run, alias="c").update(status="skipped")
    moved = states.move_tasks([rows["a"], rows["b"], rows["c"]], "running", lambda t: f"go {t.alias}")
    assert [task.alias for task in moved] == ["a"]
    now = dict(TaskRun.objects.filter(run=run).values_list("alias", "status"))
    assert now == {"a": "running", "b": "queued", "c": "skipped", "d": "queued", "e": "queued"}
    assert list(TaskRunTransition.objects.filter(task_run__run=run).values_list("task_run__alias", "reason")) == [
        ("a", "go a")]
    with pytest.raises(states.IllegalTransition, match="task c cannot go from skipped to running"):
        rows["c"].status = "skipped"
        states.move_tasks([rows["c"]], "running", "again")


@pytest.mark.django_db
def test_each_task_gets_its_own_values_in_one_statement_unless_its_attempt_moved(tenant_a):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    run = _run(tenant_a)
    tasks = {task.alias: task for task in run.tasks.all()}
    TaskRun.objects.filter(pk=tasks["c"].pk).update(attempt=2)  # c's attempt 1 is over
    TaskRun.objects.filter(pk=tasks["b"].pk).update(started=timezone.now() - dt.timedelta(hours=1))
    stamp = timezone.now()
    changes = {tasks[alias]: {"job_name": f"job-{alias}", "params": {"n": alias}, "started": stamp} for alias in "abc"}
    with CaptureQueriesContext(connection) as queries:
        states.update_each(changes, unset="started")
    # one statement (executemany: logged as "3 times: UPDATE ...")
    assert [q["sql"].split(": ", 1)[-1].split()[0] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]] == ["UPDATE"]
    after = {t.alias: t for t in run.tasks.all()}
    assert (after["a"].job_name, after["a"].params, after["a"].started) == ("job-a", {"n": "a"}, stamp)
    assert after["b"].job_name == "" and after["b"].started < stamp  # already started: untouched
    assert after["c"].job_name == "" and after["c"].started is None  # another attempt: untouched


@pytest.mark.django_db
def test_the_rows_cache_follows_the_run_and_shares_equal_needs(tenant_a):
    run = _run(tenant_a)
    rows = {row.alias: row for row in engine._rows(run)}
    assert rows["d"].needs == ("a", "b", "c") and rows["d"].needs is rows["e"].needs
    assert rows["a"].needs == () and rows["a"].status == "queued"
    TaskRun.objects.filter(run=run, alias="a").update(status="running")
    assert {row.alias: row.status for row in engine._rows(run)}["a"] == "running"  # statuses are read fresh
    # A task added later (ids the cache does not know) makes it read the run again.
    TaskRun.objects.create(run=run, alias="f", type="custom-script", position=9, needs=["e"])
    assert {row.alias: row.needs for row in engine._rows(run)}["f"] == ("e",)


def _from_another_thread(fn, *args):
    """What another worker thread would do meanwhile; returns fn's result."""
    out = []
    thread = threading.Thread(target=lambda: out.append(fn(*args)))
    thread.start()
    thread.join(10)
    return out[0]


def test_a_dispatch_asked_for_while_one_runs_is_done_by_it_afterwards(monkeypatch):
    rounds = []

    def fake(run_id):
        rounds.append(run_id)
        if len(rounds) == 1:  # another thread asks while this one dispatches
            rounds.append(("asked", _from_another_thread(engine.dispatch, run_id)))
        return [len(rounds)]

    monkeypatch.setattr(engine, "_dispatch", fake)
    assert engine.dispatch(7) == [2, 3]  # two rounds (ids claimed by each), the asker returned at once
    assert rounds == [7, ("asked", []), 7]
    assert not engine._DISPATCHES.busy(7)


def test_a_failed_dispatch_hands_on_the_requests_it_took_over(monkeypatch):
    queued = []

    def fake(run_id):
        assert _from_another_thread(engine.dispatch, run_id) == []  # at once: this one is running
        raise RuntimeError("database is locked")

    monkeypatch.setattr(engine, "_dispatch", fake)
    monkeypatch.setattr(pipeline_tasks.dispatch_run, "delay", lambda run_id: queued.append(run_id))
    with pytest.raises(RuntimeError):
        engine.dispatch(8)
    assert queued == [8] and not engine._DISPATCHES.busy(8)


def test_steps_finishing_while_one_thread_collects_are_collected_in_its_next_round(monkeypatch):
    rounds, queued = [], []

    def fake(ids):
        rounds.append(list(ids))
        if len(rounds) == 1:
            _from_another_thread(engine.collect_many, [5, 3])
            assert _from_another_thread(engine.offer_to_collector, [4])  # the monitor's shortcut
        return None

    monkeypatch.setattr(engine, "_collect_many", fake)
    engine.collect_many([1, 2])
    assert rounds == [[1, 2], [3, 4, 5]] and not engine._COLLECTOR.busy(None)
    assert not engine.offer_to_collector([7])  # nobody collecting: the monitor collects them itself

    def failing(ids):
        rounds.append(list(ids))
        _from_another_thread(engine.collect_many, [9])
        raise RuntimeError("database is locked")

    monkeypatch.setattr(engine, "_collect_many", failing)
    monkeypatch.setattr(pipeline_tasks.on_tasks_finished, "delay", lambda ids: queued.append(ids))
    with pytest.raises(RuntimeError):
        engine.collect_many([6])
    assert queued == [[9]] and not engine._COLLECTOR.busy(None)


def test_the_monitor_collects_what_it_hears_in_its_own_thread_and_hands_over_what_fails(monkeypatch):
    import json
    import socket

    from apps.pipelines import monitor

    watcher = monitor.StepMonitor()  # not started: _receive is called here, as its thread would
    collected, queued = [], []
    monkeypatch.setattr(pipeline_tasks.on_tasks_finished, "delay", lambda ids: queued.append(ids))

    def hear(*task_ids):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for task_id in task_ids:
                sock.sendto(json.dumps({"task_run": task_id, "job": "j"}).encode(), (watcher.host, watcher.port))
        time.sleep(0.05)
        watcher._receive()

    try:
        monkeypatch.setattr(engine, "collect_many", lambda ids: collected.append((list(ids), threading.get_ident())))
        hear(11, 12, 11)
        assert collected == [([11, 12], threading.get_ident())] and queued == []  # one round, no message

        def busy_database(ids):
            raise RuntimeError("database is locked")

        monkeypatch.setattr(engine, "collect_many", busy_database)
        hear(13)
        assert queued == [[13]]  # the retried task takes them over
    finally:
        watcher.sock.close()


def test_a_monitor_thread_gets_its_own_monitor_even_while_it_is_being_stopped():
    """Collecting in the monitor's thread starts steps, which asks for the monitor's address: that
    must neither wait for the stop (which waits for the thread) nor start a second monitor."""
    from apps.pipelines import monitor

    first = monitor.ensure_started()
    seen = []
    release = threading.Event()

    def collecting():  # what the receive thread does while stop() joins it
        release.wait(5)
        seen.append(monitor.ensure_started())

    thread = threading.Thread(target=collecting)
    thread.dice_monitor = first
    thread.start()
    stopper = threading.Thread(target=monitor.stop)
    stopper.start()
    release.set()
    thread.join(5)
    stopper.join(5)
    assert seen == [first] and monitor._monitor is None
    assert not first.alive()


@pytest.mark.django_db
def test_finishing_many_tasks_moves_only_those_still_running_and_announces_each(tenant_a):
    from django.db.models.signals import post_save

    run = _run(tenant_a)
    TaskRun.objects.filter(run=run, alias__in="abc").update(status="running")
    tasks = {task.alias: task for task in run.tasks.all()}
    TaskRun.objects.filter(pk=tasks["c"].pk).update(status="cancelled")  # cancelled meanwhile
    heard = []

    def listen(sender, instance, created, **kwargs):
        heard.append((instance.task_run_id, instance.to_status, created))

    post_save.connect(listen, sender=TaskRunTransition, dispatch_uid="test-finish-tasks")
    try:
        moved = states.finish_tasks([
            (tasks["a"], "success", "exit code 0", {"outputs": {"k": "v"}, "exit_code": 0}),
            (tasks["b"], "failed", "exit code 3", {"exit_code": 3}),
            (tasks["c"], "success", "exit code 0", {"outputs": {}, "exit_code": 0}),
        ])
    finally:
        post_save.disconnect(dispatch_uid="test-finish-tasks", sender=TaskRunTransition)
    assert sorted(task.alias for task in moved) == ["a", "b"]
    after = {task.alias: task for task in run.tasks.all()}
    assert (after["a"].status, after["a"].outputs, after["a"].exit_code, after["a"].reason) == (
        "success", {"k": "v"}, 0, "exit code 0")
    assert (after["b"].status, after["b"].outputs, after["b"].exit_code) == ("failed", {}, 3)  # outputs kept
    assert after["a"].finished is not None and after["c"].status == "cancelled" and after["c"].exit_code is None
    assert sorted(heard) == sorted([(tasks["a"].pk, "success", True), (tasks["b"].pk, "failed", True)])
    with pytest.raises(ValueError, match="finished statuses only"):
        states.finish_tasks([(after["d"], "running", "", {})])


@pytest.mark.django_db
def test_a_dispatch_is_skipped_only_while_every_waiting_task_still_needs_another(tenant_a, settings):
    settings.DICE_PIPELINE_MAX_PARALLEL_STEPS = 10
    run = _run(tenant_a)
    TaskRun.objects.filter(run=run, alias__in="abc").update(status="running")
    tasks = {task.alias: task for task in run.tasks.all()}

    def ended(alias, status="success"):
        TaskRun.objects.filter(pk=tasks[alias].pk).update(status=status)
        tasks[alias].status = status
        return tasks[alias]

    assert not engine._may_advance(run, [ended("a")])  # d and e still need b and c
    assert engine._may_advance(run, [ended("b", "failed")])  # a failure: skips to propagate
    TaskRun.objects.filter(pk=tasks["b"].pk).update(status="success")
    assert engine._may_advance(run, [ended("c")])  # d and e are ready
    TaskRun.objects.filter(pk=tasks["c"].pk).update(status="running")
    assert not engine._may_advance(run, [ended("a")])  # c runs: d and e wait for it
    settings.DICE_PIPELINE_MAX_PARALLEL_STEPS = 2  # c running and a just ended: the run was full
    assert engine._may_advance(run, [ended("a")])  # someone may wait for the slot
    settings.DICE_PIPELINE_MAX_PARALLEL_STEPS = 10
    # Nothing needs d (the last stage): while c and e are unfinished the run cannot end, and a
    # stage of a hundred such steps dispatched the whole run after each of them.
    assert not engine._may_advance(run, [ended("d")])
    TaskRun.objects.filter(pk__in=[tasks["c"].pk, tasks["e"].pk]).update(status="success")
    assert engine._may_advance(run, [ended("d")])  # nothing is left: the run is over


@pytest.mark.django_db
def test_the_logs_of_steps_that_ended_together_are_stored_in_one_transaction(tenant_a, settings, tmp_path):
    """The collector persists the last lines of a round's steps with one commit and one insert;
    a cursor another writer moved meanwhile makes it store each on its own, never a line twice."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.logs.services import read_task_lines
    from apps.pipelines import paths, secrets, steplogs, steps
    from scheduler.base import JobSpec
    from tests.pipelines_helpers import close_local_executors, wait_until

    settings.DICE_LOCAL_ROOT = str(tmp_path / "local")
    run = _run(tenant_a)
    masker = secrets.Masker(["hunter2"])
    executor = steps.run_executor(run)
    try:
        tasks = {task.alias: task for task in run.tasks.all()}
        printed = {"a": "echo one; echo two hunter2; echo three", "b": "echo four; echo five", "c": "true",
                   "d": "echo six", "e": "echo seven"}
        for alias, script in printed.items():
            tasks[alias].job_name = f"job-{alias}"
            tasks[alias].save(update_fields=["job_name"])
            executor.run_job(JobSpec(name=f"job-{alias}", command=["/bin/sh", "-c", script],
                                     namespace=paths.job_namespace(run)))
        for alias in printed:
            wait_until(lambda alias=alias: executor.job_status(f"job-{alias}", paths.job_namespace(run)).state.finished,
                       10, f"job {alias}")
        steplogs.append_lines(tasks["b"], ["the console said this first"])  # b's log has a chunk already

        with CaptureQueriesContext(connection) as queries:
            steplogs.pump_many(executor, run, [tasks["a"], tasks["b"], tasks["c"], tasks["e"]], masker)
        inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('INSERT INTO "logs_logchunk"')]
        assert len(inserts) == 1  # a's and e's new chunks (b's lines join its last chunk)
        texts = {alias: [(line.number, line.text) for line in read_task_lines(tasks[alias].pk)] for alias in "abce"}
        assert texts == {"a": [(1, "one"), (2, "two ******"), (3, "three")],
                         "b": [(1, "the console said this first"), (2, "four"), (3, "five")], "c": [],
                         "e": [(1, "seven")]}
        assert (tasks["a"].log_cursor, tasks["a"].last_line, tasks["b"].last_line) == (3, 3, 3)

        stale = TaskRun.objects.get(pk=tasks["d"].pk)
        steplogs.pump_logs(executor, run, tasks["d"], masker)  # another writer stored d's line meanwhile
        tasks["a"].log_cursor = tasks["a"].last_line = 0  # and a's copy is stale too
        steplogs.pump_many(executor, run, [tasks["a"], stale], masker)
        assert [(line.number, line.text) for line in read_task_lines(stale.pk)] == [(1, "six")]
        assert len(read_task_lines(tasks["a"].pk)) == 3
        assert (stale.log_cursor, stale.last_line, tasks["a"].last_line) == (1, 1, 3)
    finally:
        executor.destroy_all()
        close_local_executors()


def _stage(width: int) -> str:
    """One stage of `width` steps, then a step that needs them all."""
    steps = [f'      - custom-script: {{alias: s{i}, commands: ["true"]}}' for i in range(width)]
    return "\n".join(['version: "1.1"', "stages:", "  - stage:", *steps,
                      "  - stage:", '      - custom-script: {alias: last, commands: ["true"]}']) + "\n"


def _queries(run_code) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        run_code()
    return [q["sql"] for q in queries.captured_queries]


# What one dispatch of a ready stage costs, whatever its width: the run and its tasks' states read,
# the claim (lock, update, history rows), the claimed rows, the configs and the cluster read, the
# job names and the start times written (and, at a run's first dispatch in this process, its
# objects made from the row). A task more costs none: it rides in the same statements.
DISPATCH_QUERIES = 12
# Collecting one step that ended (its row, its last lines and its end in one transaction) and the
# dispatch and start of the step that needed it: the run, cluster and configs read once for both.
COLLECT_QUERIES = 21


@pytest.mark.django_db
def test_dispatching_a_wide_stage_costs_the_same_queries_for_any_width(tenant_a, settings, tmp_path, monkeypatch):
    from apps.pipelines import notify, steps
    from tests.pipelines_helpers import close_local_executors

    settings.DICE_LOCAL_ROOT = str(tmp_path / "local")
    settings.DICE_PIPELINE_ROOT = str(tmp_path / "pipelines")  # a run id used before has no files here
    monkeypatch.setattr(notify, "address", lambda: None)  # no monitor: the steps' ends are not collected here
    monkeypatch.setattr(notify, "watch", lambda task_id: None)
    counts, executor = {}, None
    try:
        for width in (1, 3, 30):  # the first also reads the cluster's ClusterRef, kept for the others
            run = services.start_run(tenant_a.owner, tenant_a.app, source=_stage(width))
            assert states.move_run(run, "running", "test")
            executor = steps.run_executor(run)
            claimed = []
            sql = _queries(lambda run=run, claimed=claimed: claimed.extend(engine.dispatch(run.pk)))
            assert len(claimed) == width
            assert TaskRun.objects.filter(run=run, status="running", started__isnull=False).count() == width
            assert TaskRunTransition.objects.filter(task_run__run=run, to_status="running").count() == width
            counts[width] = len(sql)
        assert counts[3] == counts[30] <= DISPATCH_QUERIES, counts
    finally:
        if executor is not None:
            executor.destroy_all()
        close_local_executors()


@pytest.mark.django_db
def test_collecting_one_result_and_starting_its_successor_is_a_bounded_number_of_queries(
        tenant_a, settings, tmp_path, monkeypatch):
    from apps.pipelines import notify, steps
    from tests.pipelines_helpers import close_local_executors, describe, wait_until

    settings.DICE_LOCAL_ROOT = str(tmp_path / "local")
    settings.DICE_PIPELINE_ROOT = str(tmp_path / "pipelines")  # a run id used before has no files here
    monkeypatch.setattr(notify, "address", lambda: None)
    monkeypatch.setattr(notify, "watch", lambda task_id: None)
    run = services.start_run(tenant_a.owner, tenant_a.app, source=_stage(1))
    assert states.move_run(run, "running", "test")
    executor = steps.run_executor(run)
    try:
        assert len(engine.dispatch(run.pk)) == 1
        first = TaskRun.objects.get(run=run, alias="s0")
        first.run = run
        try:
            wait_until(lambda: steps.read_result(first) is not None
                       and steps.job_state(executor, run, first).state.finished, 30, "the first step's end")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{describe(run)}") from None
        sql = _queries(lambda: engine.collect_many([first.pk]))
        assert TaskRun.objects.get(pk=first.pk).status == "success"
        last = TaskRun.objects.get(run=run, alias="last")
        assert last.status == "running" and last.started is not None
        assert len(sql) <= COLLECT_QUERIES, "\n".join(sql)
    finally:
        executor.destroy_all()
        close_local_executors()


@pytest.mark.django_db
def test_the_run_cluster_is_made_again_when_its_row_or_binding_changes(tenant_a):
    from apps.clusters.models import Cluster
    from apps.pipelines import steps
    from apps.projects.models import Workspace

    run = _run(tenant_a)
    first = steps.cluster_of(run)
    assert steps.cluster_of(run) is first  # kept while the cluster's row is unchanged
    workspace = Workspace.objects.select_related("cluster").get(project=tenant_a.app.project, kind=run.workspace)
    Cluster.objects.filter(pk=workspace.cluster_id).update(allow_shared_tenancy=True)
    second = steps.cluster_of(run)
    assert second is not first and second.config.get("allow_shared_tenancy") is True
    other = Cluster.objects.create(name="another-local", kind=workspace.cluster.kind)
    Workspace.objects.filter(pk=workspace.pk).update(cluster=other)
    assert steps.cluster_of(run).name == "another-local"


@pytest.mark.django_db
def test_a_kept_run_is_made_again_when_its_row_or_its_owners_change(tenant_a):
    from apps.projects.models import Application

    run = _run(tenant_a)
    first = engine._current_run(run.pk)
    assert first.application.slug == tenant_a.app.slug and first.status == "queued"
    again = engine._current_run(run.pk)
    assert again is not first and again.application is first.application  # made once, copied
    assert states.move_run(again, "running", "test")
    assert engine._current_run(run.pk).status == "running"  # the run's own row moved
    Application.objects.filter(pk=tenant_a.app.pk).update(slug="renamed")
    assert engine._current_run(run.pk).application.slug == "renamed"  # and its application's
    run.delete()
    assert engine._current_run(run.pk) is None
