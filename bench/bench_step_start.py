"""Bench: what starting a local pipeline step costs, without the console's dispatch around it
(figures, not pass/fail). Steps are real: the agent (`python -m agent run`) in its sandbox, as
LocalExecutor.start_step runs it, each running `true`.

- chain: N steps one after the other, each started when the previous one's result is written:
  start request -> the agent running (its own start stamp) and -> its result written;
- burst: W steps started at once (one job_batch, as a wide stage is): start request -> the last
  agent running.

Run (as root, with bubblewrap, for the sandbox): .venv/bin/python bench/bench_step_start.py
    [--chain 40] [--burst 100]

Figures (issue 25, 2026-12-07, this 2-core machine shared with six engineers at load 24-32,
DICE_LOCAL_JOB_PRIORITY=normal so that the steps are not starved by the others' work; main
(a shim interpreter exec'd per step, then the agent's) and the perf branch (shims forked from
the pre-forking server, the agent on built-in modules), alternated, three rounds each:

                               main                       perf
    chain, -> agent running    510 / 508 / 504 ms         181 / 176 / 253 ms   (median)
    burst of 100, all running  7.3 / 7.0 / 8.3 s          4.6 / 4.4 / 4.9 s
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scheduler.base import StepJob  # noqa: E402
from scheduler.local import LocalExecutor  # noqa: E402
from scheduler.local.sandbox import isolation  # noqa: E402


def step(root: Path, name: str) -> StepJob:
    folder = root / "runs" / "1" / "steps" / name
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"task_run": 1, "job": name, "alias": name, "type": "custom-script",
            "workdir": str(root / "runs" / "1" / "work" / name), "dirs": {}, "commands": ["true"], "envs": {},
            "caches": [], "metafile": str(folder / "metafile"), "result": str(folder / "result.json"),
            "timeout": None, "mask": [], "notify": None}
    return StepJob(name=name, namespace="pipelines-1", spec=spec, folder=str(folder), tenant="bench-org")


def result(job: StepJob, timeout: float = 120.0) -> dict:
    path = Path(job.spec["result"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            time.sleep(0.0005)
    raise TimeoutError(f"{job.name}: no result after {timeout}s")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chain", type=int, default=40)
    parser.add_argument("--burst", type=int, default=100)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dice-bench-steps-"))
    executor = LocalExecutor(tmp / "local", search_path=[])
    print(f"sandbox: {isolation().enabled} ({isolation().reason or 'bubblewrap'}); cpus {os.cpu_count()}; "
          f"load {os.getloadavg()[0]:.1f}")
    try:
        executor.start_step(step(tmp, "warm"))  # the process starter, the tenant's uid
        result(step(tmp, "warm"))
        running, done = [], []
        for i in range(args.chain):
            job = step(tmp, f"c{i}")
            t0 = time.time()
            executor.start_step(job)
            res = result(job)
            running.append((res["started"] - t0) * 1000)
            done.append((time.time() - t0) * 1000)
        print(f"chain of {args.chain}: start -> agent running median {statistics.median(running):.1f} ms, "
              f"p90 {percentile(running, 90):.1f} ms; -> result written median {statistics.median(done):.1f} ms")
        jobs = [step(tmp, f"b{i}") for i in range(args.burst)]
        t0 = time.time()
        with executor.job_batch():
            for job in jobs:
                executor.start_step(job)
        results = [result(job) for job in jobs]
        last_running = max(r["started"] for r in results) - t0
        last_done = max(r["finished"] for r in results) - t0
        print(f"burst of {args.burst}: start -> every agent running {last_running * 1000:.0f} ms, "
              f"-> every result written {last_done * 1000:.0f} ms")
    finally:
        executor.destroy_all()
        executor.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
