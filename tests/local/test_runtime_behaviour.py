"""Local runtime behaviour beyond the guestbook: refusals, addons, crash loops, logs, limits."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from scheduler.base import ClusterRef, ExecutorError, ExecutorUnavailable, Health
from scheduler.local import LocalExecutor
from scheduler.registry import executor_for
from tests.local.conftest import GUESTBOOK, group_of, wait_for


def test_service_without_cmd_is_refused(executor, runtime):
    spec = 'version: "2.0"\nservices:\n  web:\n    image: nginx:1.27\n    ports: [80]\n'
    with pytest.raises(ExecutorError, match=r"service 'web' has no cmd.*image 'nginx:1.27'"):
        executor.apply(group_of(spec, runtime))
    assert executor.status(runtime).health is Health.MISSING


@pytest.mark.parametrize(
    ("plan", "package"), [("redis:basic", "redis-server"), ("postgresql:basic", "postgresql"),
                          ("mysql:basic", "mariadb-server")]
)
def test_missing_binary_names_the_package(make_executor, runtime, tmp_path, plan, package):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    executor = make_executor(search_path=[str(empty)])
    spec = f'version: "2.0"\nservices:\n  app:\n    cmd: sleep 60\naddons:\n  db:\n    plan: {plan}\n'
    with pytest.raises(ExecutorUnavailable, match=f"apt-get install {package}"):
        executor.apply(group_of(spec, runtime))
    assert executor.status(runtime).health is Health.MISSING


def test_unsupported_addon_is_refused(executor, runtime):
    spec = 'version: "2.0"\nservices:\n  app:\n    cmd: sleep 60\naddons:\n  q:\n    plan: kafka:basic\n'
    with pytest.raises(ExecutorUnavailable, match="kafka"):
        executor.apply(group_of(spec, runtime))


def test_crash_loop_is_degraded_with_reason(executor, runtime):
    executor.apply(group_of('version: "2.0"\nservices:\n  bad:\n    cmd: echo dying; exit 1\n', runtime))
    status = wait_for(lambda: (s := executor.service_status(runtime, "bad")).health is Health.DEGRADED and s,
                      what="crash loop")
    assert status.reason.startswith("crash looping: exit 1, ")
    assert status.replicas[0].restarts >= 2
    assert "crash looping" in executor.status(runtime).reason


PG_CHECK = (
    'PGPASSWORD="$POSTGRES_PASSWORD" {psql} -h "$POSTGRES_HOST" -p "$POSTGRES_PORT" -U "$POSTGRES_USER" '
    '-d "$POSTGRES_DATABASE" -tAc "select current_database()" | grep -qx "$POSTGRES_DATABASE"'
)


@pytest.mark.needs_binary("postgres", "postgresql")
def test_postgresql_addon_with_credentials(executor, runtime):
    psql = shutil.which("psql") or next(
        f"/usr/lib/postgresql/{v}/bin/psql" for v in range(19, 11, -1) if os.path.exists(f"/usr/lib/postgresql/{v}/bin/psql")
    )
    spec = f"""
version: "2.0"
services:
  app:
    cmd: sleep 600
    health_check:
      exec:
        cmd: '{PG_CHECK.format(psql=psql)}'
addons:
  orders-db:
    plan: postgresql:basic
"""
    executor.apply(group_of(spec, runtime))
    wait_for(lambda: executor.status(runtime).health is Health.HEALTHY, 60, "postgres and a client that logs in")
    assert executor.status(runtime).addons["orders-db"].ready == 1


def test_logs_rotate_tail_and_follow(make_executor, runtime, tmp_path):
    executor = make_executor(log_max_bytes=2000, log_keep=2)
    spec = ('version: "2.0"\nservices:\n  talker:\n'
            '    cmd: i=0; while true; do i=$((i+1)); echo "line $i"; sleep 0.005; done\n')
    executor.apply(group_of(spec, runtime))
    logs_dir = executor.runtime_dir(runtime.namespace) / "logs"
    wait_for(lambda: (logs_dir / "talker-0.log.2").exists(), what="two rotations")
    assert not (logs_dir / "talker-0.log.3").exists()
    tail = list(executor.logs(runtime, "talker", tail=5))
    assert len(tail) == 5 and {line.source for line in tail} == {"talker-0"}
    numbers = [line.number for line in tail]
    assert numbers == list(range(numbers[0], numbers[0] + 5)) and numbers[0] > 50
    assert all(line.text == f"line {line.number}" for line in tail)
    follow = executor.logs(runtime, "talker", follow=True, tail=1)
    got = [next(follow) for _ in range(20)]
    follow.close()
    assert [line.number for line in got] == list(range(got[0].number, got[0].number + 20))


def test_memory_limit_and_variables(executor, runtime):
    spec = """
version: "2.0"
services:
  probe:
    cmd: 'echo "as=$(ulimit -v) port=$PORT self=$SELF_PORT ws=$DICE_WORKSPACE mem=$DICE_MEM_LIMIT"; sleep 600'
    ports: [9000]
    resources: {mem: 200}
"""
    executor.apply(group_of(spec, runtime))
    line = wait_for(lambda: [entry.text for entry in executor.logs(runtime, "probe")], what="output")[0]
    port = executor.pids(runtime) and executor.service_status(runtime, "probe").replicas[0].address.split(":")[1]
    if executor.sandboxes.enabled and executor.sandboxes.isolation.cgroups:
        # Resident memory in the sandbox's cgroup, not address space.
        assert line == f"as=unlimited port={port} self={port} ws=DEV mem=200"
        assert memory_limit(executor.pids(runtime)["probe-0"]["process"]) == 200 * 1024 * 1024
    else:
        assert line == f"as={200 * 1024} port={port} self={port} ws=DEV mem=200"


def memory_limit(pid: int) -> int:
    """The memory limit of the cgroup `pid` is in, read from the host (v1 or v2)."""
    for entry in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, names, path = entry.split(":", 2)
        if "memory" in names.split(","):
            return int(Path(f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes").read_text())
        if names == "" and Path(f"/sys/fs/cgroup{path}/memory.max").exists():
            return int(Path(f"/sys/fs/cgroup{path}/memory.max").read_text())
    raise AssertionError(f"process {pid} is in no memory cgroup")


def test_registry_gives_one_executor_per_root(local_root):
    cluster = ClusterRef("local", "local", {"root": str(local_root)})
    first = executor_for(cluster)
    try:
        assert isinstance(first, LocalExecutor) and first is executor_for(cluster)
    finally:
        first.close()


def test_guestbook_renders_for_kubernetes():
    """The same dice.yml has images for every service and job."""
    from diceyml import parse_dice_yml

    spec = parse_dice_yml((GUESTBOOK / "dice.yml").read_text(), workspace="PROD")
    assert all(s.image for s in spec.services.values()) and all(j.image for j in spec.jobs.values())
    for script in ("front.py", "api.py", "resp.py"):
        compile((GUESTBOOK / script).read_text(), script, "exec")  # no __pycache__ left behind


def test_the_inspector_counts_what_runs_on_the_machine(executor, runtime, local_root):
    """The cluster page and the resource report read the snapshot: a runtime of two replicas on
    local is two pods with their requests, in a namespace labelled with its org/project/app."""
    from scheduler.registry import inspector_for

    spec = ('version: "2.0"\nservices:\n  app:\n    cmd: sleep 60\n    resources: {cpu: 0.25, mem: 64}\n'
            '    deployments: {replicas: 2}\n')
    executor.apply(group_of(spec, runtime))
    wait_for(lambda: executor.status(runtime).services["app"].ready == 2, what="two replicas running")
    inspector = inspector_for(ClusterRef("local", "local", {"root": str(local_root)}))
    snap = inspector.snapshot()
    (node,) = snap["nodes"]
    assert node["pod_count"] == 2 and len(snap["pods"]) == 2
    assert node["requests"]["cpu"] == 500 and node["requests"]["memory"] == 2 * 64 * 1024 * 1024
    (ns,) = snap["namespaces"]
    assert ns["name"] == runtime.namespace and ns["pods"] == 2
    assert ns["dice"]["dice.io/project"] == "shop" and ns["dice"]["dice.io/runtime"] == "main"
    executor.destroy(runtime)
    assert inspector.snapshot()["nodes"][0]["pod_count"] == 0
