"""A runtime with an ordinary service on the local cluster and an `engine: flink` service on the
Flink data cluster (scheduler.routed.EngineRouted, what apps.deploy uses for every runtime)."""

from __future__ import annotations

from pathlib import Path

import pytest

from diceyml import parse_dice_yml
from scheduler.base import ExecutorError, Health, RuntimeRef, ServiceGroup
from scheduler.flink import FlinkExecutor
from scheduler.local import LocalExecutor
from scheduler.routed import EngineRouted
from tests.flink.conftest import wait_for

pytestmark = pytest.mark.flink

SPEC = """
version: "2.0"
services:
  web:
    cmd: exec sleep 600
  counter:
    engine: flink
    cmd: -c Count count.jar stream routed
"""


def test_services_go_to_their_engines_cluster_and_status_is_merged(flink: FlinkExecutor, count_jar: Path,
                                                                   tmp_path: Path):
    runtime = RuntimeRef("acme", "shop", "mixed", "DEV", "main")
    local = LocalExecutor(tmp_path / "local", allow_shared_tenancy=True)
    routed = EngineRouted(local, {"flink": flink})
    group = ServiceGroup(runtime, parse_dice_yml(SPEC), release="r1", workdir=str(count_jar.parent))
    try:
        routed.apply(group)
        status = wait_for(lambda: (s := routed.status(runtime)).health is Health.HEALTHY and s, 90, "healthy")
        assert set(status.services) == {"web", "counter"}
        assert set(local.status(runtime).services) == {"web"}  # the Flink service is not a process here
        assert flink.has_service(runtime, "counter") and not flink.has_service(runtime, "web")
        routed.scale(runtime, "counter", 2)  # to the Flink cluster: a new job from a savepoint
        assert routed.status(runtime).services["counter"].desired == 2
        assert any(e.reason == "Savepoint" for e in routed.events(runtime, "counter"))
        # the next release without the Flink service: its job is stopped, the rest stays
        routed.apply(ServiceGroup(runtime, parse_dice_yml("version: '2.0'\nservices:\n  web:\n    cmd: exec sleep 600\n"),
                                  release="r2", workdir=str(count_jar.parent)))
        assert not flink.has_service(runtime, "counter")
        assert set(routed.status(runtime).services) == {"web"}
    finally:
        routed.destroy(runtime)
        local.destroy_all()
        local.close()


def test_a_flink_service_without_a_flink_data_cluster_is_refused(tmp_path: Path):
    local = LocalExecutor(tmp_path / "local", allow_shared_tenancy=True)
    try:
        with pytest.raises(ExecutorError, match="has `engine: flink` but the workspace has no flink data cluster"):
            EngineRouted(local, {}).apply(ServiceGroup(RuntimeRef("a", "b", "c", "DEV", "m"), parse_dice_yml(SPEC)))
        assert local.runtimes() == []
    finally:
        local.close()
