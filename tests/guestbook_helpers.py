"""The example application as a test fixture: examples/guestbook pushed to a bare git repository
on a tmp path, and tenant a's application pointing at it (its workspaces are bound to `local`)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

GUESTBOOK = ROOT / "examples" / "guestbook"


def guestbook_repo(tmp_path: Path) -> Path:
    """A bare repository whose `main` holds one commit of examples/guestbook."""
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


@dataclass
class Guestbook:
    tenant: object  # tests.conftest.Tenant: its application is the guestbook
    repo: Path  # the bare repository, also the application's repo_url
    source: str  # examples/guestbook/pipeline.yml

    @property
    def app(self):
        return self.tenant.app


@pytest.fixture
def guestbook(tenant_a, tmp_path, settings) -> Guestbook:
    bare = guestbook_repo(tmp_path)
    settings.DICE_REPO_ALLOW_LOCAL_PATHS = True  # the repository is a folder of this machine
    # Release working directories are named by release id: another test's release 1 must not be reused.
    settings.DICE_DEPLOY_FILES = str(tmp_path / "files")
    type(tenant_a.app).objects.filter(pk=tenant_a.app.pk).update(repo_url=str(bare))
    tenant_a.app.refresh_from_db()
    return Guestbook(tenant=tenant_a, repo=bare, source=(GUESTBOOK / "pipeline.yml").read_text())
