# ruff: noqa: F811
"""A webhook fills the run it starts: params named after the event's fields (repo, branch, commit...)
take its values, a git-checkout clones the pushed repository at exactly the pushed commit, the
shipped guestbook pipeline starts from a push with no param given, and a definition that cannot
start is reported for itself while the others run."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from apps.pipelines.checkout import checkout_defaults
from tests.pipelines_helpers import engine  # noqa: F401
from tests.test_webhooks_providers import SECRET, deliver, fixture

GUESTBOOK = Path(__file__).resolve().parent.parent / "examples" / "guestbook" / "pipeline.yml"


def _hook(tenant, *sources: tuple[str, str]):
    from apps.pipelines import services

    services.set_config(tenant.owner, tenant.project, key="webhook_secret", value=SECRET, secret=True)
    for name, source in sources:
        services.save_definition(tenant.owner, tenant.app, source=source, name=name)


def _push(repo: str, branch: str, commit: str) -> dict:
    payload = fixture("github_push")
    payload["ref"], payload["after"] = f"refs/heads/{branch}", commit
    payload["repository"]["clone_url"] = repo
    return payload


def test_the_guestbook_pipeline_starts_from_a_push_with_no_param_given(tenant_a):
    from apps.pipelines.models import PipelineRun

    _hook(tenant_a, ("guestbook", GUESTBOOK.read_text()))
    payload = _push("https://git.example.org/team/guestbook.git", "feature/login", "a" * 40)
    response = deliver(tenant_a, "github", payload, "push")
    assert response.status_code == 202, response.content
    run = PipelineRun.objects.get()
    assert run.params == {"repo": "https://git.example.org/team/guestbook.git", "branch": "feature/login"}
    assert run.trigger_payload["commit"] == "a" * 40


def test_a_definition_that_cannot_start_is_reported_alone_and_the_others_run(tenant_a):
    from apps.pipelines.models import PipelineRun
    from apps.projects.models import AuditEvent

    needs_token = ('version: "1.1"\non:\n  push:\n    branches: [main]\nparams:\n  - name: token\n    required: true\n'
                   'stages:\n  - stage:\n      - echo: {params: {msg: hi}}\n')
    fine = 'version: "1.1"\non:\n  push:\n    branches: [main]\nstages:\n  - stage:\n      - echo: {params: {msg: hi}}\n'
    _hook(tenant_a, ("needs-token", needs_token), ("fine", fine))
    response = deliver(tenant_a, "github", _push("https://git.example.org/a.git", "main", "b" * 40), "push")
    assert response.status_code == 202, response.content
    assert [run.definition.name for run in PipelineRun.objects.all()] == ["fine"]
    notes = response.json()["notes"]
    assert "needs-token: cannot start: params: param 'token' is required" in notes
    refused = AuditEvent.objects.filter(action="run_refused").get()
    assert "param 'token' is required" in refused.after["reason"]


def test_checkout_defaults_follow_the_event():
    push = {"event": "push", "repo": "https://h/r.git", "branch": "main", "commit": "c1"}
    assert checkout_defaults({}, push) == {"uri": "https://h/r.git", "commit": "c1", "branch": "main"}
    assert checkout_defaults({"uri": "https://h/r.git", "branch": "main"}, push)["commit"] == "c1"
    # Another repository, another branch, or a commit given: the step's own params stand.
    assert "commit" not in checkout_defaults({"uri": "https://h/other.git"}, push)
    assert "commit" not in checkout_defaults({"uri": "https://h/r.git", "branch": "release"}, push)
    assert checkout_defaults({"commit": "c0"}, push)["commit"] == "c0"
    assert checkout_defaults({"uri": "x"}, {"event": "manual"}) == {"uri": "x"}


def _git(*args, cwd=None, env=None):
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.mark.django_db(transaction=True)
def test_the_checkout_takes_exactly_the_pushed_commit_not_the_branch_head(unsandboxed, engine, tenant_a, tmp_path):
    env = {"GIT_AUTHOR_NAME": "Ann", "GIT_AUTHOR_EMAIL": "ann@example.org", "GIT_COMMITTER_NAME": "Ann",
           "GIT_COMMITTER_EMAIL": "ann@example.org", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    bare, work = tmp_path / "repo.git", tmp_path / "work"
    _git("init", "-q", "--bare", "-b", "main", str(bare), env=env)
    _git("init", "-q", "-b", "main", str(work), env=env)
    (work / "VERSION").write_text("one\n")
    _git("add", ".", cwd=work, env=env)
    _git("commit", "-q", "-m", "one", cwd=work, env=env)
    pushed = _git("rev-parse", "HEAD", cwd=work, env=env)
    (work / "VERSION").write_text("two\n")
    _git("commit", "-qam", "two", cwd=work, env=env)  # the head moves on before the run starts
    _git("push", "-q", str(bare), "main", cwd=work, env=env)
    source = """\
version: "1.1"
on:
  push:
    branches: [main]
stages:
  - stage:
      - git-checkout: {alias: checkout}
  - stage:
      - custom-script:
          alias: show
          commands: ["grep -qx one ${{ dirs.checkout }}/VERSION"]
"""
    _hook(tenant_a, ("ci", source))
    response = deliver(tenant_a, "github", _push(str(bare), "main", pushed), "push")
    assert response.status_code == 202, response.content
    from apps.pipelines.models import PipelineRun

    run = engine.wait(PipelineRun.objects.get(pk=response.json()["runs"][0]), 60)
    assert run.status == "success", run.reason
    checkout = engine.tasks(run)["checkout"]
    assert checkout.outputs["commit"] == pushed and checkout.outputs["branch"] == "main"
