"""The Flink tier: one managed local session cluster (JobManager + TaskManager, sandboxed and
supervised by the local engine) for the whole test session, and the counting job's jar built
from tests/data/flink/Count.java with the engine's own Flink jars. Skipped with the hint to run
`make engines` when Flink is not installed; failed instead under CI=true."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from scheduler.base import ClusterRef, JobState
from scheduler.engines import engine_venv, missing_hint
from scheduler.flink import FlinkExecutor
from scheduler.flink.session import NAMESPACE, flink_home
from tests import polling

DATA = Path(__file__).resolve().parents[1] / "data" / "flink"
COUNT = re.compile(r"^(?P<tag>[\w-]+)> [+-][IU]\[(?P<count>\d+), (?P<max>-?\d+|null)\]")


def wait_for(predicate: Callable[[], object], timeout: float, what: str):
    return polling.wait_for(predicate, timeout, what, interval=0.3)


def _usable() -> None:
    reason = None
    if engine_venv("flink") is None:
        reason = missing_hint("flink")
    elif shutil.which("javac") is None:
        reason = "the Flink tier builds its test jar with javac (apt-get install openjdk-17-jdk-headless)"
    if reason:
        from tests.conftest import IN_CI

        if IN_CI:
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def flink_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("flink")
    root.chmod(0o755)  # the sandboxed processes' uid walks through it to their own directories
    return root


@pytest.fixture(scope="session")
def count_jar(flink_root: Path) -> Path:
    _usable()
    lib = flink_home(engine_venv("flink")) / "lib"
    build = flink_root / "build"
    subprocess.run(["javac", "-cp", f"{lib}/*", "-d", str(build / "classes"), str(DATA / "Count.java")],
                   check=True, capture_output=True, timeout=120)
    jar = build / "count.jar"
    subprocess.run(["jar", "cf", str(jar), "-C", str(build / "classes"), "."], check=True, timeout=60)
    build.chmod(0o755)
    return jar


def managed_ref(root: Path) -> ClusterRef:
    """The managed `flink-local` as apps.clusters.services.cluster_ref makes it when DICE_LOCAL_ROOT
    is `root`: a deployment or a step through the console then reaches this very session."""
    from django.conf import settings

    return ClusterRef("flink-local", "flink", {"root": str(root), "managed": True,
                                               "worker_cores": settings.DICE_SPARK_WORKER_CORES,
                                               "worker_memory_mib": settings.DICE_SPARK_WORKER_MEMORY})


@pytest.fixture(scope="session")
def flink(flink_root: Path) -> FlinkExecutor:
    """The managed session cluster (the console's flink-local under the root `flink_root/local`),
    started once (about 20 s) and stopped after the session."""
    from scheduler.flink import create_executor

    _usable()
    executor = create_executor(managed_ref(flink_root / "local"))
    try:
        executor.session.ensure()
        yield executor
    finally:
        with contextlib.suppress(Exception):
            executor.local().destroy_all()
        executor.session.stop()
        executor.close()


def taskmanager_counts(flink: FlinkExecutor, tag: str) -> list[int]:
    """The counts the counting job tagged `tag` printed (the TaskManager's stdout, its local job's log)."""
    session = flink.session
    found = []
    for line in session.local.job_logs(session.current_tm(), NAMESPACE):
        match = COUNT.match(line.text)
        if match and match["tag"] == tag:
            found.append(int(match["count"]))
    return found


def finished(flink: FlinkExecutor, name: str, namespace: str, timeout: float = 90.0):
    return wait_for(lambda: (s := flink.job_status(name, namespace)).state.finished and s, timeout, f"job {name} to end")


def running(flink: FlinkExecutor, name: str, namespace: str, timeout: float = 90.0):
    return wait_for(lambda: (s := flink.job_status(name, namespace)).state is JobState.RUNNING
                    and flink.jobs().flink_state(name, namespace) == "RUNNING" and s, timeout, f"job {name} to run")
