"""Bench: the spark kind on its managed cluster (needs `make engines`). Starts a managed cluster on a
temporary root, then measures:
- start-up: from nothing to a master answering with an alive worker;
- idle memory of the managed cluster (RSS of the master's and worker's process trees);
- the same PySpark job run by plain `spark-submit` (unsandboxed, this process's child) and by
  SparkExecutor.run_job (a sandboxed local job): wall time of each, and their ratio;
- from run_job to the application registered at the master (the driver running).
Usage: .venv/bin/python bench/bench_spark.py [rounds]"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scheduler.base import ClusterRef, JobSpec, JobState  # noqa: E402
from scheduler.local import create_executor as local_executor  # noqa: E402
from scheduler.spark import SparkExecutor, rest  # noqa: E402
from scheduler.spark.app import SparkApp, job_command  # noqa: E402
from scheduler.spark.home import engine, engine_env  # noqa: E402

APP = """
import sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
print("SUM", spark.range(int(sys.argv[1])).selectExpr("sum(id) AS s").collect()[0]["s"], flush=True)
spark.stop()
"""


def tree_rss_kib(pid: int) -> int:
    """RSS of a process and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
        todo += children.get(current, [])
    return total


def main(rounds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-spark-"))
    os.chmod(tmp, 0o755)
    root = tmp / "local"
    ref = ClusterRef(name="bench", kind="spark", config={"managed": True, "root": str(root), "worker_cores": 2,
                                                          "worker_memory_mib": 768})
    executor = SparkExecutor(ref)
    local = local_executor(ClusterRef(name="local", kind="local", config={"root": str(root)}))
    try:
        t0 = time.monotonic()
        master = executor.ready()
        print(f"managed cluster start-up: {time.monotonic() - t0:.1f} s")
        time.sleep(5)
        rss = {role: tree_rss_kib(local.jobs[("spark-managed", f"bench-{role}-1")]["pid"])
               for role in ("master", "worker")}
        print("idle RSS MiB: " + ", ".join(f"{k}={v / 1024:.0f}" for k, v in rss.items())
              + f"; total={sum(rss.values()) / 1024:.0f}")
        code = tmp / "code"
        code.mkdir()
        (code / "sum.py").write_text(APP)
        os.chmod(code, 0o755)
        app = SparkApp(resource=str(code / "sum.py"), args=("100000",), type="Python")
        venv, home = engine()
        direct, ours, to_running = [], [], []
        for i in range(rounds):
            argv, env = executor.client_command(app, str(tmp / f"direct-{i}"), f"direct-{i}")
            t0 = time.monotonic()
            out = subprocess.run(argv, env={**os.environ, **engine_env(venv, home), **env}, capture_output=True,
                                 text=True, cwd=tmp)
            direct.append(time.monotonic() - t0)
            assert "SUM 4999950000" in out.stdout, out.stderr[-2000:]
            name = f"ours-{i}"
            t0 = time.monotonic()
            executor.run_job(JobSpec(name=name, namespace="bench", command=job_command(app), tenant="bench",
                                     mounts={str(code): "ro"}))
            seen = None
            while True:
                status = executor.job_status(name, "bench")
                if seen is None and any(a.get("name") == name for a in rest.master_json(master)["activeapps"]):
                    seen = time.monotonic() - t0
                if status.state.finished:
                    break
                time.sleep(0.05)
            ours.append(time.monotonic() - t0)
            to_running.append(seen if seen is not None else float("nan"))
            assert status.state is JobState.SUCCEEDED, status
        ratio = sum(ours) / sum(direct)
        print(f"spark-submit directly: {', '.join(f'{d:.1f}' for d in direct)} s")
        print(f"run_job (sandboxed):   {', '.join(f'{d:.1f}' for d in ours)} s; ratio {ratio:.2f}")
        print(f"run_job to the application registered at the master: {', '.join(f'{d:.1f}' for d in to_running)} s")
    finally:
        executor.managed.stop()
        local.destroy_all()
        local.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
