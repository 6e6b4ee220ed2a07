"""Bench: the Flink kind on the managed local session cluster (needs `make engines` and a JDK).

Prints: the session cluster's start (ensure() to ready), the JobManager's and TaskManager's RSS
idle and while the counting streaming job runs, job submit to RUNNING with every task running
(median of 10 jar submissions through the REST API), and the downtime of an upgrade with a
savepoint (the old job's stop triggered to the new job's tasks all running, through the
`engine: flink` service path: FlinkServices.apply with a new release).

    .venv/bin/python bench/bench_flink.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from diceyml import parse_dice_yml  # noqa: E402
from scheduler.base import ClusterRef, JobSpec, RuntimeRef, ServiceGroup  # noqa: E402
from scheduler.engines import engine_venv, missing_hint  # noqa: E402
from scheduler.flink import FlinkExecutor  # noqa: E402
from scheduler.flink.session import flink_home  # noqa: E402

SPEC = "version: '2.0'\nservices:\n  counter:\n    engine: flink\n    cmd: -c Count count.jar stream bench\n"


def rss_mib(conf_dir: str) -> dict[str, float]:
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if "java" in cmdline and conf_dir in cmdline:
            role = "jobmanager" if "StandaloneSessionClusterEntrypoint" in cmdline else "taskmanager"
            kib = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
            found[role] = round(kib / 1024, 1)
    return found


def wait_running(flink: FlinkExecutor, name: str, namespace: str, timeout: float = 120) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if flink.jobs().flink_state(name, namespace) == "RUNNING":
            return time.monotonic()
        time.sleep(0.05)
    raise SystemExit(f"job {name} not running after {timeout}s")


def main() -> None:
    venv = engine_venv("flink")
    if venv is None:
        raise SystemExit(missing_hint("flink"))
    work = Path(tempfile.mkdtemp(prefix="bench-flink-"))
    work.chmod(0o755)
    lib = flink_home(venv) / "lib"
    subprocess.run(["javac", "-cp", f"{lib}/*", "-d", str(work / "classes"), str(ROOT / "tests/data/flink/Count.java")],
                   check=True)
    subprocess.run(["jar", "cf", str(work / "count.jar"), "-C", str(work / "classes"), "."], check=True)
    flink = FlinkExecutor(ClusterRef("bench", "flink", {"managed": True, "root": str(work / "clusters")}))
    try:
        started = time.monotonic()
        flink.session.ensure()
        print(f"session cluster ready in {time.monotonic() - started:.1f} s")
        conf_dir = str(flink.session.dir / "run" / "conf")
        time.sleep(5)
        print(f"idle RSS MiB: {rss_mib(conf_dir)}")
        times = []
        for i in range(10):
            name = f"submit-{i}"
            t0 = time.monotonic()
            flink.run_job(JobSpec(name=name, namespace="bench", workdir=str(work),
                                  command=["-c", "Count", "count.jar", "stream", f"b{i}"]))
            times.append(wait_running(flink, name, "bench") - t0)
            flink.cancel_job(name, "bench")
        print(f"submit to RUNNING (all tasks), 10 jar jobs: median {statistics.median(times):.2f} s, "
              f"min {min(times):.2f} s, max {max(times):.2f} s")
        runtime = RuntimeRef("bench", "bench", "stream", "DEV", "main")
        flink.apply(ServiceGroup(runtime, parse_dice_yml(SPEC), release="r1", workdir=str(work)))
        wait_running(flink, "counter-1", runtime.namespace)
        time.sleep(10)
        print(f"RSS MiB with the counting job running: {rss_mib(conf_dir)}")
        t0 = time.monotonic()
        flink.apply(ServiceGroup(runtime, parse_dice_yml(SPEC), release="r2", workdir=str(work)))
        downtime = wait_running(flink, "counter-2", runtime.namespace) - t0
        print(f"upgrade with savepoint: stop + start from it until every task runs: {downtime:.2f} s")
        flink.destroy(runtime)
    finally:
        flink.local().destroy_all()
        flink.session.stop()
        flink.close()


if __name__ == "__main__":
    main()
