# ruff: noqa: F811
"""The engine on the local cluster with an embedded Celery worker: dispatch order, skips, retries,
timeouts, cancel, concurrency, outputs, secrets, caches."""

from __future__ import annotations

import pytest

from apps.logs.services import read_task_lines
from tests.pipelines_helpers import engine, retry_locked, wait_until  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def test_dag_with_stages_and_needs_runs_in_dependency_order(unsandboxed, engine, tenant_a, tmp_path):
    trace = tmp_path / "trace"
    src = f"""
version: "1.1"
stages:
  - stage:
      - custom-script:
          alias: a
          commands: ["echo a >> {trace}"]
      - custom-script:
          alias: b
          commands: ["sleep 0.3; echo b >> {trace}"]
  - stage:
      - custom-script:
          alias: c
          needs: [a]
          commands: ["echo c >> {trace}"]
      - custom-script:
          alias: d
          commands: ["echo d >> {trace}"]
"""
    run = engine.wait(engine.run(tenant_a, src))
    assert run.status == "success", run.reason
    tasks = engine.tasks(run)
    assert {t.status for t in tasks.values()} == {"success"}
    order = trace.read_text().split()
    assert order.index("a") < order.index("c")
    assert order.index("b") < order.index("d") and order.index("a") < order.index("d")
    # c needs only a: it does not wait for b
    assert order.index("c") < order.index("b")
    assert tasks["d"].started >= max(tasks["a"].finished, tasks["b"].finished)
    assert [t.to_status for t in run.transitions.all()] == ["running", "success"]
    assert [t.to_status for t in tasks["a"].transitions.all()] == ["running", "success"]


def test_failed_dependency_and_false_if_skip_with_reasons(engine, tenant_a):
    src = """
version: "1.1"
params:
  - name: deploy
    default: "no"
stages:
  - stage:
      - custom-script:
          alias: broken
          commands: ["echo about to fail", "exit 3"]
      - custom-script:
          alias: gated
          if: ${{ params.deploy }} == 'yes'
          commands: ["echo never"]
      - echo:
          alias: shown
          if: ${{ params.deploy == 'no' }} && !false
          params: {msg: "deploy is ${{ params.deploy }}"}
  - stage:
      - custom-script:
          alias: after
          needs: [broken]
          commands: ["echo never"]
      - custom-script:
          alias: later
          needs: [after]
          commands: ["echo never"]
      - custom-script:
          alias: after-gated
          needs: [gated]
          commands: ["echo runs"]
"""
    run = engine.wait(engine.run(tenant_a, src))
    tasks = engine.tasks(run)
    assert run.status == "failed" and "broken" in run.reason
    assert tasks["broken"].status == "failed" and tasks["broken"].exit_code == 3
    assert tasks["broken"].reason == "exit code 3"
    assert tasks["gated"].status == "skipped" and "is false" in tasks["gated"].reason
    assert tasks["shown"].status == "success"
    assert [line.text for line in read_task_lines(tasks["shown"].pk)] == ["deploy is no"]
    assert tasks["after"].status == "skipped" and "dependency 'broken' failed" in tasks["after"].reason
    assert tasks["later"].status == "skipped" and "'after' was skipped" in tasks["later"].reason
    # a dependency skipped by its `if` does not block its successors
    assert tasks["after-gated"].status == "success"
    texts = [line.text for line in read_task_lines(tasks["broken"].pk)]
    assert "about to fail" in texts and texts[-1] == "exit code 3"
    assert [line.number for line in read_task_lines(tasks["broken"].pk)] == list(range(1, len(texts) + 1))
    assert tasks["broken"].last_line == len(texts)


def test_retry_with_backoff_then_success(unsandboxed, engine, tenant_a, tmp_path):
    counter = tmp_path / "count"
    src = f"""
version: "1.1"
stages:
  - stage:
      - custom-script:
          alias: flaky
          retry: {{max: 2, backoff: 0.5}}
          commands:
            - echo x >> {counter}
            - test $(wc -l < {counter}) -ge 3
"""
    run = engine.wait(engine.run(tenant_a, src))
    task = engine.tasks(run)["flaky"]
    assert run.status == "success"
    assert task.attempt == 3 and counter.read_text().count("x") == 3
    history = [(t.from_status, t.to_status) for t in task.transitions.all()]
    assert history == [("queued", "running"), ("running", "queued")] * 2 + [("queued", "running"), ("running", "success")]
    # each retry waited for its backoff
    starts = [t.created for t in task.transitions.filter(to_status="running")]
    retries = [t.created for t in task.transitions.filter(to_status="queued")]
    assert all((start - retry).total_seconds() >= 0.45 for retry, start in zip(retries, starts[1:], strict=True))
    assert {line.attempt for line in read_task_lines(task.pk)} == {1, 2, 3}


def test_timeout_makes_the_task_timed_out(engine, tenant_a):
    src = """
version: "1.1"
stages:
  - stage:
      - custom-script:
          alias: slow
          timeout: 1
          commands: ["sleep 30"]
"""
    run = engine.wait(engine.run(tenant_a, src))
    task = engine.tasks(run)["slow"]
    assert task.status == "timed-out" and task.reason == "timed out after 1s"
    assert run.status == "failed"
    assert (task.finished - task.started).total_seconds() < 10


def test_cancel_stops_the_running_local_process(unsandboxed, engine, tenant_a, tmp_path):
    from apps.pipelines import services, steps
    from scheduler.base import JobState

    marker = tmp_path / "started"
    src = f"""
version: "1.1"
stages:
  - stage:
      - custom-script:
          alias: long
          commands: ["echo $$ > {marker}", "sleep 60", "echo never >> {marker}"]
  - stage:
      - echo: {{params: {{msg: never}}}}
"""
    run = engine.run(tenant_a, src)
    wait_until(lambda: marker.exists() and marker.read_text().strip(), 20, "the step to start")
    pid = int(marker.read_text().split()[0])
    retry_locked(services.cancel_run, tenant_a.owner, run)
    run.refresh_from_db()
    assert run.status == "cancelled"
    tasks = engine.tasks(run)
    assert tasks["long"].status == "cancelled" and tasks["echo"].status == "cancelled"
    executor = steps.executor_for(run)
    wait_until(lambda: executor.job_status(tasks["long"].job_name, steps.job_namespace(run)).state
               is JobState.CANCELLED, 15, "the job to be cancelled")
    import os

    def gone():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_until(gone, 10, "the step's shell to exit")
    assert "never" not in marker.read_text()


def test_concurrent_runs_per_project_are_limited(engine, tenant_a, settings, tmp_path):
    settings.DICE_PIPELINE_MAX_RUNS_PER_PROJECT = 1
    src = """
version: "1.1"
stages:
  - stage:
      - custom-script: {commands: ["sleep 0.5"]}
"""
    first, second = engine.run(tenant_a, src), engine.run(tenant_a, src)
    wait_until(lambda: first.refresh_from_db() or first.status == "running", 10, "the first run to start")
    retry_locked(second.refresh_from_db)
    assert second.status == "queued"
    engine.wait(second)
    first.refresh_from_db()
    assert first.status == second.status == "success"
    assert second.started >= first.finished


def test_a_queued_run_started_while_the_database_is_busy_is_still_dispatched(engine, tenant_a, settings, monkeypatch):
    """The queued run is moved to running, then its dispatch meets a busy database (SQLite's
    "database is locked"): it must still be dispatched, not left running with nothing started
    (test_concurrent_runs_per_project_are_limited timed out so once)."""
    from django.db import OperationalError

    from apps.pipelines import engine as engine_mod

    settings.DICE_PIPELINE_MAX_RUNS_PER_PROJECT = 1
    src = """
version: "1.1"
stages:
  - stage:
      - custom-script: {commands: ["sleep 0.3"]}
"""
    first, second = engine.run(tenant_a, src), engine.run(tenant_a, src)
    real, failed = engine_mod.dispatch, []

    def busy_once(run_id):
        if run_id == second.pk and not failed:
            failed.append(run_id)
            raise OperationalError("database is locked")
        return real(run_id)

    monkeypatch.setattr(engine_mod, "dispatch", busy_once)
    run = engine.wait(second)
    assert failed == [second.pk] and run.status == "success", run.reason
    first.refresh_from_db()
    assert first.status == "success" and run.started >= first.finished


def test_outputs_flow_between_steps_and_secret_configs_are_masked(unsandboxed, engine, tenant_a, tmp_path):
    from apps.pipelines import services
    from apps.pipelines.models import ProjectConfig

    retry_locked(services.set_config, tenant_a.owner, tenant_a.project, key="token", value="s3cr3t-value", secret=True)
    retry_locked(services.set_config, tenant_a.owner, tenant_a.project, key="region", value="eu-1")
    stored = ProjectConfig.objects.get(key="token")
    assert "s3cr3t" not in stored.value and stored.plain_value() == "s3cr3t-value"
    out = tmp_path / "seen"
    src = f"""
version: "1.1"
stages:
  - stage:
      - custom-script:
          alias: build
          commands:
            - echo "version=1.2.$((1+2))" >> $METAFILE
            - 'echo "action meta: image=registry/app:${{{{ configs.region }}}}"'
            - echo "using ${{{{ configs.token }}}} now"
  - stage:
      - custom-script:
          alias: use
          commands:
            - echo "${{{{ outputs.build.version }}}} ${{build:OUTPUT:image}} ${{{{ configs.token }}}}" > {out}
            - echo "got ${{{{ outputs.build.version }}}} with ${{{{ configs.token }}}}"
"""
    run = engine.wait(engine.run(tenant_a, src))
    assert run.status == "success", run.reason
    tasks = engine.tasks(run)
    assert tasks["build"].outputs == {"version": "1.2.3", "image": "registry/app:eu-1"}
    assert out.read_text().strip() == "1.2.3 registry/app:eu-1 s3cr3t-value"  # the step saw the value
    texts = [line.text for task in run.tasks.all() for line in read_task_lines(task.pk)]
    assert "using ****** now" in texts and "got 1.2.3 with ******" in texts
    assert not any("s3cr3t" in t for t in texts)
    assert "s3cr3t" not in str(tasks["use"].params)


def test_caches_are_restored_into_a_later_run(engine, tenant_a):
    from apps.pipelines.models import CacheEntry

    src = """
version: "1.1"
stages:
  - stage:
      - custom-script:
          alias: build
          caches: [{key: deps, path: .cache}]
          commands:
            - if [ -f .cache/dep.txt ]; then echo "restored $(cat .cache/dep.txt)"; else echo fresh; fi
            - mkdir -p .cache && echo "run-$PIPELINE_ID" > .cache/dep.txt
"""
    first = engine.wait(engine.run(tenant_a, src))
    assert first.status == "success"
    entry = CacheEntry.objects.get(project=tenant_a.project, key="deps")
    assert entry.size > 0
    second = engine.wait(engine.run(tenant_a, src))
    texts = [line.text for line in read_task_lines(engine.tasks(second)["build"].pk)]
    assert f"restored run-{first.pk}" in texts
    assert "fresh" in [line.text for line in read_task_lines(engine.tasks(first)["build"].pk)]
