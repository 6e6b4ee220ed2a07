"""Fixtures for the local runtime: executors on tmp roots whose every process is stopped after the
test, whatever happened in it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from diceyml import parse_dice_yml
from scheduler.base import RuntimeRef, ServiceGroup
from scheduler.local import LocalExecutor
from scheduler.local.state import proc_start_time

ROOT = Path(__file__).resolve().parents[2]
GUESTBOOK = ROOT / "examples" / "guestbook"


def wait_for(predicate: Callable[[], object], timeout: float = 15.0, what: str = "condition"):
    """Poll until predicate() is truthy; fail with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            last = predicate()
            if last:
                return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def pid_alive(pid: int) -> bool:
    return proc_start_time(pid) is not None


def group_of(text: str, runtime: RuntimeRef, workdir: str | Path | None = None, **kwargs) -> ServiceGroup:
    return ServiceGroup(runtime, parse_dice_yml(text, workspace=runtime.workspace),
                        workdir=str(workdir) if workdir else None, **kwargs)


@pytest.fixture
def runtime() -> RuntimeRef:
    return RuntimeRef("acme", "shop", "guestbook", "DEV", "main")


@pytest.fixture
def local_root(tmp_path: Path) -> Path:
    return tmp_path / "local"


@pytest.fixture
def make_executor(local_root: Path):
    """LocalExecutor factory; afterwards every runtime and job under the root is destroyed."""
    made: list[LocalExecutor] = []

    def make(**kwargs) -> LocalExecutor:
        executor = LocalExecutor(kwargs.pop("root", local_root), **kwargs)
        made.append(executor)
        return executor

    yield make
    for executor in made:
        executor.close()
    known = _recorded_processes(local_root)
    sweeper = LocalExecutor(local_root)  # re-adopts whatever is left, then stops it
    try:
        sweeper.destroy_all()
    finally:
        sweeper.close()
    left = [pid for pid, start in known if proc_start_time(pid) == start]
    for pid in left:  # last resort, so one failing test does not leak into the next
        with contextlib.suppress(OSError):
            os.killpg(pid, 9)
    assert not left, f"processes left running after destroy: {left}"


def _recorded_processes(root: Path) -> list[tuple[int, int | None]]:
    """Every (pid, start time) the root knows of: shims in state files, children in pid files."""
    found: list[tuple[int, int | None]] = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("pid"), int) and node["pid"] > 0:
                found.append((node["pid"], node.get("start_time") or proc_start_time(node["pid"])))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in [*root.rglob("state.json"), *root.rglob("job.json"), *root.rglob("*.pid")]:
        with contextlib.suppress(OSError, ValueError):
            walk(json.loads(path.read_text()))
    return [(pid, start) for pid, start in found if start is not None]


@pytest.fixture
def executor(make_executor) -> LocalExecutor:
    return make_executor()


@pytest.fixture
def guestbook(executor: LocalExecutor, runtime: RuntimeRef, tmp_path: Path) -> ServiceGroup:
    """The guestbook deployed and healthy."""
    workdir = tmp_path / "guestbook"  # a copy, so running it leaves no __pycache__ in the tree
    shutil.copytree(GUESTBOOK, workdir, ignore=shutil.ignore_patterns("__pycache__"))
    group = group_of((workdir / "dice.yml").read_text(), runtime, workdir)
    executor.apply(group)
    wait_for(lambda: executor.status(runtime).health == "Healthy", 30, "the guestbook to be healthy")
    return group
