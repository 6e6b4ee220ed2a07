"""The spark tier: one managed Spark cluster (master + worker from `make engines`, run as sandboxed
jobs of the local kind) for the whole session. Skipped with the install hint where the engine is
missing; under CI (which runs `make engines` and has Java) that is a failure."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from scheduler.base import ClusterRef
from scheduler.engines import engine_venv, missing_hint
from scheduler.local import create_executor as local_executor
from scheduler.spark import SparkExecutor
from tests import polling


def needs_spark() -> None:
    if engine_venv("spark") is None:
        if os.environ.get("CI") == "true":  # CI runs `make engines` and has Java: Spark must be there
            pytest.fail(missing_hint("spark"))
        pytest.skip(missing_hint("spark"))


def wait_for(predicate: Callable[[], object], timeout: float, what: str):
    return polling.wait_for(predicate, timeout, what, interval=0.2)


@pytest.fixture(scope="session")
def spark_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("spark") / "local"
    root.mkdir(parents=True)
    os.chmod(root.parent, 0o755)
    return root


@pytest.fixture(scope="session")
def spark_cluster(spark_root: Path):
    """The managed cluster's executor (started once); afterwards every job under its root is gone."""
    needs_spark()
    ref = ClusterRef(name="spark-test", kind="spark",
                     config={"managed": True, "root": str(spark_root), "worker_cores": 2, "worker_memory_mib": 768})
    executor = SparkExecutor(ref)
    started = time.monotonic()
    try:
        executor.ready()
        executor.startup_seconds = time.monotonic() - started
        yield executor
    finally:  # also when the cluster did not come up in time: its daemons must not outlive the session
        local = local_executor(ClusterRef(name="local", kind="local", config={"root": str(spark_root)}))
        with contextlib.suppress(Exception):
            executor.managed.stop()
        local.destroy_all()
        local.close()
