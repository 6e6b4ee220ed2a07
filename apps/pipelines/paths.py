"""Where a run keeps its files on the console's machine (its directory, each action's working
directory `${{ dirs.<alias> }}`, each step's folder with its spec and result, the project's
caches) and what its steps' jobs are called on the cluster (name and namespace)."""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

from django.conf import settings

from apps.pipelines.models import PipelineRun, TaskRun
from scheduler.base import dns_label


def pipelines_root() -> Path:
    explicit = getattr(settings, "DICE_PIPELINE_ROOT", "") or os.environ.get("DICE_PIPELINE_ROOT", "")
    return _root(str(explicit), str(settings.DATA_DIR))


@functools.lru_cache(maxsize=16)
def _root(explicit: str, data_dir: str) -> Path:
    return Path(explicit) if explicit else Path(data_dir) / "pipelines"


def run_dir(run_id: int) -> Path:
    return _run_dir(pipelines_root(), run_id)


@functools.lru_cache(maxsize=256)  # a step's paths all start here: built once per run, not per call
def _run_dir(root: Path, run_id: int) -> Path:
    return root / "runs" / str(run_id)


def dirs_root(run_id: int) -> Path:
    return run_dir(run_id) / "dirs"


def action_dir(run_id: int, alias: str) -> Path:
    """`${{ dirs.<alias> }}`: the action's working directory, shared with later steps."""
    return dirs_root(run_id) / alias


def step_dir(task: TaskRun) -> Path:
    return Path(step_folder(task))


def step_folder(task: TaskRun) -> str:
    """step_dir as text: a stage's 100 specs are built in one thread, and pathlib's joins (a dozen
    per step) cost more than the rest of a spec."""
    return f"{_run_text(pipelines_root(), task.run_id)}/steps/{task.alias}-{task.attempt}"


@functools.lru_cache(maxsize=256)
def _run_text(root: Path, run_id: int) -> str:
    return os.fspath(_run_dir(root, run_id))


def cache_archive(project_id: int, key: str) -> Path:
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return pipelines_root() / "caches" / str(project_id) / f"{digest}.tar.gz"


def job_name(run_id: int, alias: str, attempt: int) -> str:
    """Deterministic and DNS-safe: the same attempt of the same task always has the same job."""
    base = f"p{run_id}-{dns_label(alias, 40)}-{attempt}"
    if len(base) > 63 or dns_label(alias, 40) != alias.lower():
        digest = hashlib.sha1(alias.encode()).hexdigest()[:6]
        base = f"p{run_id}-{dns_label(alias, 30)}-{digest}-{attempt}"
    return base[:63]


def job_namespace(run: PipelineRun) -> str:
    return f"pipelines-{run.application.project_id}"
