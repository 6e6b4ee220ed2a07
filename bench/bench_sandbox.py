"""Bench: what the local sandbox costs (figures, not pass/fail).

Starts the same steps and services on the local cluster with the sandbox and with it switched
off, one at a time, and prints for each the delay from the start request to the command's first
output line (median, p99), and the memory of the processes the sandbox adds to a running
service (bubblewrap's monitor and the sandbox's init: RSS and PSS), and the CPU one start costs.

Run (as root, with bubblewrap): .venv/bin/python bench/bench_sandbox.py [--steps 40] [--services 15]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from diceyml import parse_dice_yml  # noqa: E402
from scheduler.base import JobSpec, RuntimeRef, ServiceGroup  # noqa: E402
from scheduler.local import LocalExecutor  # noqa: E402
from scheduler.local.sandbox import Isolation, isolation  # noqa: E402


def first_line_time(lines) -> float | None:
    for line in lines:
        if line.text == "started":
            return line.timestamp
    return None


def wait(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.005)
    raise TimeoutError("gave up waiting")


def one_step(executor: LocalExecutor, root: Path, i: int) -> float:
    folder = root / "runs" / "1" / "steps" / f"s{i}-1"
    work = root / "runs" / "1" / "dirs" / f"s{i}"
    job = JobSpec(name=f"s{i}", command=["/bin/sh", "-c", "echo started"], namespace="pipelines-1",
                  tenant="bench-org", workdir=str(work), files={str(folder / "spec.json"): "{}"},
                  mounts={str(folder): "rw"})
    asked = time.time()
    executor.run_job(job)
    wait(lambda: executor.job_status(f"s{i}", "pipelines-1").state.finished)
    return (first_line_time(executor.job_logs(f"s{i}", "pipelines-1")) - asked) * 1000


SERVICE = parse_dice_yml('version: "2.0"\nservices:\n  web:\n    cmd: echo started; exec sleep 600\n'
                         '    resources: {mem: 128}\n', workspace="DEV")


def one_service(executor: LocalExecutor, i: int) -> float:
    runtime = RuntimeRef("bench-org", "p", f"a{i}", "DEV", "main")
    asked = time.time()
    executor.apply(ServiceGroup(runtime, SERVICE))
    started = wait(lambda: first_line_time(executor.logs(runtime, "web")))
    executor.destroy(runtime)
    return (started - asked) * 1000


def sandbox_memory(executor: LocalExecutor) -> tuple[float, float]:
    """KiB of RSS and PSS of bubblewrap's monitor and the sandbox's init for one running service."""
    spec = parse_dice_yml('version: "2.0"\nservices:\n  web:\n    cmd: exec sleep 600\n', workspace="DEV")
    runtime = RuntimeRef("bench-org", "p", "mem", "DEV", "main")
    executor.apply(ServiceGroup(runtime, spec))
    try:
        pids = wait(lambda: executor.pids(runtime).get("web-0"))
        wait(lambda: executor.pids(runtime)["web-0"]["process"])
        shim = pids["shim"]
        monitor = int(Path(f"/proc/{shim}/task/{shim}/children").read_text().split()[0])
        init = int(Path(f"/proc/{monitor}/task/{monitor}/children").read_text().split()[0])
        rss = pss = 0.0
        for pid in (monitor, init):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        return rss, pss
    finally:
        executor.destroy(runtime)


def shim_cpu(tmp: Path, count: int) -> dict[str, float]:
    """CPU (user + system, ms) of one shim start and its command (`sleep 0.05`), with and without
    the sandbox: a figure the machine's load does not blur as it blurs delays."""
    from scheduler.local.sandbox import SHIM, Sandboxes, write_spec

    work = tmp / "cpu-work"
    work.mkdir()
    boxes = Sandboxes(tmp / "cpu-root")
    spec = write_spec(str(tmp / "cpu.sandbox.json"),
                      boxes.spec("bench-org", binds=[(str(work), str(work), "rw")], mem_mib=128, cpu=1))
    boxes.own(work, "bench-org")
    out = {}
    for mode, extra in (("no sandbox", []), ("sandbox", ["--sandbox", spec])):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        for _ in range(count):
            subprocess.run([sys.executable, "-S", SHIM, "--log", str(tmp / "cpu.log"), "--pidfile", str(tmp / "cpu.pid"),
                            "--exitfile", str(tmp / "cpu.exit"), "--cwd", str(work), *extra, "--",
                            "/bin/sh", "-c", "sleep 0.05"], check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out[mode] = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / count * 1000
    return out


def summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return f"{name}: median {statistics.median(ordered):.1f} ms, p99 {p99:.1f} ms ({len(ordered)} starts)"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--services", type=int, default=15)
    args = parser.parse_args()
    isol = isolation()
    if not isol.enabled:
        print(f"no sandbox on this machine: {isol.reason}")
        return 1
    print(f"sandbox: {isol.report()['tool']}, cgroups {isol.cgroups or 'none (rlimits)'}")
    results = {"sandbox": ([], []), "no sandbox": ([], [])}
    with tempfile.TemporaryDirectory(prefix="dice-bench-sandbox-") as tmp:
        executors = {"sandbox": LocalExecutor(Path(tmp) / "boxed", allow_shared_tenancy=True),
                     "no sandbox": LocalExecutor(Path(tmp) / "plain", isolation=Isolation(False, "bench"),
                                                 allow_shared_tenancy=True)}
        try:
            # Interleaved, each mode first half the time: the machine's load drifts alike for both.
            for i in range(max(args.steps, args.services)):
                order = list(executors) if i % 2 == 0 else list(reversed(executors))
                for mode in order:
                    if i < args.steps:
                        results[mode][0].append(one_step(executors[mode], Path(tmp) / mode / "pipelines", i))
                    if i < args.services:
                        results[mode][1].append(one_service(executors[mode], i))
            rss, pss = sandbox_memory(executors["sandbox"])
            cpu = shim_cpu(Path(tmp), args.steps)
        finally:
            for executor in executors.values():
                executor.destroy_all()
                executor.close()
    for mode, (step_delays, service_delays) in results.items():
        print(f"[{mode}]")
        print("  " + summary("step: run_job -> command running", step_delays))
        print("  " + summary("service: apply -> command running", service_delays))
    for index, what in ((0, "step"), (1, "service")):
        with_box = statistics.median(results["sandbox"][index])
        without = statistics.median(results["no sandbox"][index])
        print(f"sandbox cost per {what} start (difference of medians): {with_box - without:.1f} ms")
    print(f"CPU of one start (shim + command), {args.steps} starts: "
          + ", ".join(f"{mode} {ms:.1f} ms" for mode, ms in cpu.items())
          + f"; the sandbox adds {cpu['sandbox'] - cpu['no sandbox']:.1f} ms")
    print(f"memory the sandbox adds to a running service (bwrap monitor + init): RSS {rss:.0f} KiB, PSS {pss:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
