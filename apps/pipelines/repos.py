"""Hosted git repositories: one bare repository per application under the console's data directory
(DICE_REPOS_ROOT, default DATA_DIR/repos/<application id>.git), served over smart HTTP by
apps.pipelines.git_http, read here with plain `git` commands (branches, recent commits, the files
a commit declares its pipelines in).

A repository's path comes from the application's primary key, never from text in a URL, and every
git command runs with the console's own configuration only (no system or global config, hooks
switched off): what a pusher sends is refs and objects, never configuration or hooks.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

GIT = "git"
TIMEOUT = 60  # seconds for one read command
MAX_PIPELINE_FILES = 20  # .dice/pipelines/*.yml read from one commit
MAX_PIPELINE_BYTES = 1024 * 1024
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
ZERO = "0" * 40


class RepoError(Exception):
    """A git command on a hosted repository failed; the message says which and why."""


def repos_root() -> Path:
    return Path(getattr(settings, "DICE_REPOS_ROOT", "") or Path(settings.DATA_DIR) / "repos")


def repo_path(application_id: int) -> Path:
    return repos_root() / f"{int(application_id)}.git"


def max_push_bytes() -> int:
    """The largest push (pack) the console accepts, DICE_GIT_MAX_PUSH_BYTES (default 100 MiB)."""
    return int(getattr(settings, "DICE_GIT_MAX_PUSH_BYTES", 0) or 100 * 1024 * 1024)


def max_repo_bytes() -> int:
    """A repository at or over DICE_GIT_MAX_REPO_BYTES (default 1 GiB) takes no more pushes."""
    return int(getattr(settings, "DICE_GIT_MAX_REPO_BYTES", 0) or 1024 * 1024 * 1024)


def _empty_hooks() -> Path:
    path = repos_root() / ".no-hooks"
    path.mkdir(parents=True, exist_ok=True)
    return path


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every git process on a hosted repository gets: no system or user config,
    no hooks, objects checked as they arrive, and `extra` config pairs."""
    config = {
        "core.hooksPath": str(_empty_hooks()),
        "receive.fsckObjects": "true",
        "transfer.fsckObjects": "true",
        "receive.maxInputSize": str(max_push_bytes()),
        "uploadpack.allowFilter": "true",
        "core.fsync": "committed",  # objects and refs reach the disk before the push is answered
        **(extra or {}),
    }
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(repos_root()),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_COUNT": str(len(config)),
    }
    for i, (key, value) in enumerate(config.items()):
        env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
    return env


def exists(application_id: int) -> bool:
    return (repo_path(application_id) / "HEAD").is_file()


def ensure(application_id: int) -> Path:
    """The application's repository, made (bare, default branch main) when it has none yet."""
    path = repo_path(application_id)
    if not (path / "HEAD").is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        _run(["init", "--quiet", "--bare", "--initial-branch=main", str(path)], None)
    return path


def _run(args: list[str], application_id: int | None, *, check: bool = True) -> str:
    argv = [GIT, *([f"--git-dir={repo_path(application_id)}"] if application_id is not None else []), *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, env=git_env())
    except subprocess.TimeoutExpired:
        raise RepoError(f"git {args[0]} took longer than {TIMEOUT}s") from None
    if check and done.returncode != 0:
        raise RepoError(f"git {args[0]} failed: {(done.stderr or done.stdout).strip()[-300:]}")
    return done.stdout


def remove(application_id: int) -> bool:
    """Delete the application's repository folder (the application is gone). True if there was one.
    Also done when an application is created: a folder left at its id (a crash between the delete
    and this, or SQLite reusing the largest id) never becomes a new application's history."""
    path = repo_path(application_id)
    if not path.exists():
        return False
    shutil.rmtree(path)
    return True


def size_bytes(application_id: int) -> int:
    total = 0
    for current, _, files in os.walk(repo_path(application_id)):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(current, name)).st_size
    return total


def refs(application_id: int) -> dict[str, str]:
    """Every branch and tag: full ref name -> commit."""
    if not exists(application_id):
        return {}
    out = _run(["for-each-ref", "--format=%(refname) %(objectname)", "refs/heads", "refs/tags"], application_id)
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


@dataclass
class Branch:
    name: str
    commit: str
    subject: str
    author: str
    date: str


@dataclass
class Commit:
    sha: str
    subject: str
    author: str
    date: str


def branches(application_id: int) -> list[Branch]:
    if not exists(application_id):
        return []
    out = _run(["for-each-ref", "--sort=-committerdate", "--count=50",
                "--format=%(refname:short)%00%(objectname)%00%(subject)%00%(authorname)%00%(committerdate:iso-strict)",
                "refs/heads"], application_id)
    return [Branch(*line.split("\0")) for line in out.splitlines() if line.count("\0") == 4]


def recent_commits(application_id: int, ref: str = "HEAD", count: int = 10) -> list[Commit]:
    if not exists(application_id):
        return []
    out = _run(["log", f"--max-count={int(count)}", "--format=%H%x00%s%x00%an%x00%cI", ref, "--"],
               application_id, check=False)
    return [Commit(*line.split("\0")) for line in out.splitlines() if line.count("\0") == 3]


def pipeline_files(application_id: int, commit: str) -> list[tuple[str, str]]:
    """(path, text) of the pipelines a commit declares: pipeline.yml and .dice/pipelines/*.yml.
    Only blobs (a link in the tree is not followed), each at most MAX_PIPELINE_BYTES."""
    if not _SHA.match(commit):
        raise RepoError(f"{commit!r} is not a commit id")
    listing = _run(["ls-tree", "-z", "--long", commit, "--", "pipeline.yml", ".dice/pipelines/"], application_id)
    found = []
    for entry in listing.split("\0"):
        if not entry:
            continue
        meta, _, path = entry.partition("\t")
        mode, kind, sha, size = meta.split()
        if kind != "blob" or mode not in ("100644", "100755") or not path.endswith((".yml", ".yaml")):
            continue
        if path != "pipeline.yml" and path.count("/") != 2:
            continue
        if int(size) > MAX_PIPELINE_BYTES:
            raise RepoError(f"{path} at {commit[:12]} is larger than {MAX_PIPELINE_BYTES} bytes")
        found.append((path, sha))
    found.sort(key=lambda item: (item[0] != "pipeline.yml", item[0]))
    return [(path, _run(["cat-file", "blob", sha], application_id)) for path, sha in found[:MAX_PIPELINE_FILES]]


# ---- the credential a run's checkout clones with --------------------------------------------------

RUN_USER_PREFIX = "pipeline-run-"


def checkout_token(run_id: int) -> str:
    """The password a run's git-checkout clones its application's hosted repository with (user
    `pipeline-run-<id>`): read-only, that repository only, while the run is queued or running."""
    return hmac.new(str(settings.SECRET_KEY).encode(), f"hosted-git-read:{run_id}".encode(),
                    hashlib.sha256).hexdigest()


def run_of_credentials(username: str, password: str) -> int | None:
    """The run id a `pipeline-run-<id>` credential names when its password is that run's token."""
    if not username.startswith(RUN_USER_PREFIX) or not username[len(RUN_USER_PREFIX):].isdigit():
        return None
    run_id = int(username[len(RUN_USER_PREFIX):])
    if hmac.compare_digest(password.encode(), checkout_token(run_id).encode()):
        return run_id
    return None
