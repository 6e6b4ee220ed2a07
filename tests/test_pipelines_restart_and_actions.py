# ruff: noqa: F811
"""A worker restart in the middle of a run, and each built-in action run for real on local."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from apps.logs.services import read_task_lines
from tests.pipelines_helpers import engine, retry_locked, wait_until  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def test_killing_the_worker_mid_run_finishes_the_run_with_every_step_run_once(unsandboxed, engine, tenant_a, tmp_path):
    from apps.pipelines import engine as pipeline_engine

    ran = tmp_path / "ran"
    gate = tmp_path / "gate"
    src = f"""
version: "1.1"
stages:
  - stage:
      - custom-script:
          alias: first
          commands: ["echo first >> {ran}"]
  - stage:
      - custom-script:
          alias: middle
          commands: ["echo middle >> {ran}", "while [ ! -f {gate} ]; do sleep 0.1; done"]
      - custom-script:
          alias: side
          commands: ["echo side >> {ran}"]
  - stage:
      - custom-script:
          alias: last
          commands: ["echo last >> {ran}"]
"""
    run = engine.run(tenant_a, src)
    wait_until(lambda: ran.exists() and "middle" in ran.read_text(), 20, "the middle step to run")
    wait_until(lambda: "side" in ran.read_text() and engine.tasks(run)["side"].status == "success", 20, "side")
    engine.stop()  # the worker, its step monitor and its LocalExecutor die; the step keeps running
    gate.touch()  # the middle step finishes while no worker listens
    wait_until(lambda: (tmp_path / "pipelines" / "runs" / str(run.pk) / "steps" / "middle-1" / "result.json").exists(),
               20, "the step to write its result")
    assert engine.tasks(run)["middle"].status == "running"
    engine.start()  # a new worker (and, on first use, a new LocalExecutor on the same root)
    retry_locked(pipeline_engine.reconcile)
    run = engine.wait(run)
    assert run.status == "success", run.reason
    assert sorted(ran.read_text().split()) == ["first", "last", "middle", "side"]
    tasks = engine.tasks(run)
    assert all(t.attempt == 1 for t in tasks.values())
    assert [line.text for line in read_task_lines(tasks["middle"].pk)][-1] == "exit code 0"


def _git_repo(tmp_path):
    work = tmp_path / "src"
    bare = tmp_path / "repo.git"
    env = {"GIT_AUTHOR_NAME": "Ann", "GIT_AUTHOR_EMAIL": "ann@example.org", "GIT_COMMITTER_NAME": "Ann",
           "GIT_COMMITTER_EMAIL": "ann@example.org", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True, env=env)
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True, env=env)
    (work / "README").write_text("hello\n")
    (work / "dice.yml").write_text('version: "2.0"\nservices:\n  web:\n    image: nginx\n    cmd: "sleep 1"\n')
    subprocess.run(["git", "add", "."], cwd=work, check=True, env=env)
    subprocess.run(["git", "commit", "-q", "-m", "first commit"], cwd=work, check=True, env=env)
    subprocess.run(["git", "push", "-q", str(bare), "main"], cwd=work, check=True, env=env)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, check=True, env=env,
                            capture_output=True, text=True).stdout.strip()
    return bare, commit


def test_git_checkout_then_release_from_the_checked_out_dice_yml(unsandboxed, engine, tenant_a, tmp_path, settings):
    from apps.deploy.bundles import release_workdir
    from apps.deploy.models import Release

    settings.DICE_DEPLOY_FILES = str(tmp_path / "files")  # working directories are per release id

    bare, commit = _git_repo(tmp_path)
    src = f"""
version: "1.1"
stages:
  - stage:
      - git-checkout:
          alias: repo
          params: {{uri: "{bare}", branch: main, depth: 1}}
  - stage:
      - custom-script:
          alias: show
          commands: ["cat ${{repo}}/README", "test ${{{{ outputs.repo.commit }}}} = {commit}"]
  - stage:
      - release:
          params:
            dice_yml: ${{{{ dirs.repo }}}}/dice.yml
            image: {{web: "registry.example/web:${{{{ outputs.repo.commit }}}}"}}
"""
    run = engine.wait(engine.run(tenant_a, src))
    assert run.status == "success", run.reason
    tasks = engine.tasks(run)
    assert tasks["repo"].outputs["commit"] == commit
    assert tasks["repo"].outputs["branch"] == "main"
    assert tasks["repo"].outputs["author"] == "Ann <ann@example.org>"
    assert tasks["repo"].outputs["message"] == "first commit"
    assert "hello" in [line.text for line in read_task_lines(tasks["show"].pk)]
    release = Release.objects.get(pk=int(tasks["release"].outputs["release_id"]))
    assert release.pipeline_run_id == run.pk and release.images == {"web": f"registry.example/web:{commit}"}
    # The checked-out files go with the release (the local cluster runs services from them), not .git.
    workdir = Path(release_workdir(release))
    assert sorted(p.name for p in workdir.iterdir()) == ["README", "dice.yml"]


def test_wait_echo_and_manual_review(engine, tenant_a):
    from apps.pipelines import services

    src = """
version: "1.1"
stages:
  - stage:
      - wait: {params: {wait_time_sec: 1}}
  - stage:
      - manual-review: {alias: approval}
  - stage:
      - echo: {params: {msg: "approved, going on"}}
"""
    run = engine.run(tenant_a, src)
    wait_until(lambda: engine.tasks(run)["approval"].status == "running"
               and engine.tasks(run)["approval"].started, 20, "the review to wait")
    tasks = engine.tasks(run)
    assert tasks["wait"].status == "success" and tasks["wait"].duration >= 0.9
    assert tasks["echo"].status == "queued"
    retry_locked(services.review_task, tenant_a.owner, tasks["approval"], approve=True, comment="ok")
    run = engine.wait(run)
    tasks = engine.tasks(run)
    assert run.status == "success"
    assert tasks["approval"].review == "approved" and tasks["approval"].outputs == {"reviewer": tenant_a.owner.username}
    assert [line.text for line in read_task_lines(tasks["echo"].pk)] == ["approved, going on"]


def test_rejected_review_fails_the_run(engine, tenant_a):
    from apps.pipelines import services

    src = """
version: "1.1"
stages:
  - stage:
      - manual-review: {}
  - stage:
      - echo: {params: {msg: never}}
"""
    run = engine.run(tenant_a, src)
    wait_until(lambda: engine.tasks(run)["manual-review"].started, 20, "the review to wait")
    retry_locked(services.review_task, tenant_a.owner, engine.tasks(run)["manual-review"], approve=False)
    run = engine.wait(run)
    tasks = engine.tasks(run)
    assert run.status == "failed"
    assert tasks["manual-review"].status == "failed" and tasks["echo"].status == "skipped"
