# ruff: noqa: F811
"""End to end: examples/guestbook/pipeline.yml checks out, tests, releases and deploys the
guestbook to DEV on the local cluster."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import ROOT
from tests.pipelines_helpers import engine, retry_locked  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.needs_binary("redis-server", "redis-server")]

GUESTBOOK = ROOT / "examples" / "guestbook"


def _repo(tmp_path):
    src = tmp_path / "guestbook-src"
    shutil.copytree(GUESTBOOK, src, ignore=shutil.ignore_patterns("__pycache__"))
    bare = tmp_path / "guestbook.git"
    env = {"GIT_AUTHOR_NAME": "Ann", "GIT_AUTHOR_EMAIL": "a@example.org", "GIT_COMMITTER_NAME": "Ann",
           "GIT_COMMITTER_EMAIL": "a@example.org", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True, env=env)
    subprocess.run(["git", "init", "-q", "-b", "main", str(src)], check=True, env=env)
    subprocess.run(["git", "add", "."], cwd=src, check=True, env=env)
    subprocess.run(["git", "commit", "-q", "-m", "guestbook"], cwd=src, check=True, env=env)
    subprocess.run(["git", "push", "-q", str(bare), "main"], cwd=src, check=True, env=env)
    return bare


def test_guestbook_pipeline_deploys_to_dev(engine, tenant_a, tmp_path):
    from apps.deploy.models import Runtime

    bare = _repo(tmp_path)
    type(tenant_a.app).objects.filter(pk=tenant_a.app.pk).update(repo_url=str(bare))
    source = (GUESTBOOK / "pipeline.yml").read_text()
    run = engine.wait(engine.run(tenant_a, source, params={"repo": str(bare)}), timeout=180)
    tasks = engine.tasks(run)
    assert run.status == "success", (run.reason, {a: (t.status, t.reason) for a, t in tasks.items()})
    assert tasks["test"].outputs == {"compiled": "api.py,front.py,resp.py"}
    runtime = Runtime.objects.get(pk=int(tasks["deploy"].outputs["runtime_id"]))
    assert runtime.workspace.kind == "DEV" and runtime.application_id == tenant_a.app.pk
