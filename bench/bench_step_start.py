"""Bench: what starting a local pipeline step costs, without the console's dispatch around it
(figures, not pass/fail). Steps are real: the agent (the compiled step runner where `make
install` built it, else `python -m agent run`; DICE_STEP_RUNNER=python to compare) in its
sandbox, as LocalExecutor.start_step runs it, each running `true`.

- chain: N steps one after the other, each started when the previous one's result is written:
  start request -> the agent running (its own start stamp) and -> its result written;
- burst: W steps started at once (one job_batch, as a wide stage is): start request -> the last
  agent running.

Run (as root, with bubblewrap, for the sandbox): .venv/bin/python bench/bench_step_start.py
    [--chain 40] [--burst 100] [--profile N]

--profile N: instead, the CPU (user + system, from wait4, so the whole process tree) each part of
a start costs, median of N rounds taken in turn: the bare interpreter, the agent's start
(interpreter and imports, with and without its bytecode, with and without runpy), and the shim
forked as the process starter forks it, around /bin/true, without and with the sandbox and its
cgroup. CPU rather than wall time: on a machine shared at load 20 the wall time of a hop is
mostly waiting for a core, and a wide stage's start on two cores is bounded by its CPU.

Figures (issue 25, 2026-12-07, this 2-core machine shared with six engineers at load 24-32,
DICE_LOCAL_JOB_PRIORITY=normal so that the steps are not starved by the others' work; main
(a shim interpreter exec'd per step, then the agent's) and the perf branch (shims forked from
the pre-forking server, the agent on built-in modules), alternated, three rounds each:

                               main                       perf
    chain, -> agent running    510 / 508 / 504 ms         181 / 176 / 253 ms   (median)
    burst of 100, all running  7.3 / 7.0 / 8.3 s          4.6 / 4.4 / 4.9 s

Issue 25 item 4, branch stepstart (the agent from bytecode and without runpy, the shim's one
fork and one thread), against main, alternated, load 27-30, DICE_LOCAL_JOB_PRIORITY=normal:

                               main                       stepstart
    chain, -> agent running    331 / 185 ms               91 / 191 ms          (median)
    burst of 100, all running  5.38 / 5.29 s              3.83 / 4.20 s

--profile 20 (load 21; CPU per start, median; shim rows with the sandbox and a v1 cgroup):
    interpreter alone 10.7 ms; agent start `-m agent` 23.0 ms with bytecode (~33 without, as
    main ran it: nothing wrote the agent's bytecode), `-P -c boot` 16.8 ms; shim + bubblewrap +
    cgroup around /bin/true 20.2 / 20.7 ms (main) -> 14.1 / 12.4 ms, ~1,980 -> ~1,330 page faults.

Issue 25 item 4, branch zygote (the command's process forked and moved into its cgroup by the
process starter's waiting child before the request, shim.Prepared), against main, alternated,
--chain 20 --burst 100, DICE_LOCAL_JOB_PRIORITY=normal, load 1.4-7 (others' tests running):

                               main                              zygote
    chain, -> agent running    69.0 / 72.1 / 50.0 / 44.8 ms      48.7 / 44.8 / 32.8 / 35.8 ms  (median)
    burst of 100, all running  2.64 / 2.64 / 2.56 / 2.27 s       3.17 / 2.38 / 2.72 / 2.07 s

The chain's start lost the move into the v1 cgroup (13 ms median at load 3, measured in
jail.child_setup: 0.08 ms once prepared); a burst is bound by CPU (two cores: ~25 ms of CPU per
step, the agent's interpreter ~13 of it), which preparing does not change.

Issue 25 item 4, branch gorunner (the compiled step runner, agent/bin/dice-step, instead of the
Python agent), against main (a clone of it run beside this branch), alternated, --chain 20
--burst 100, DICE_LOCAL_JOB_PRIORITY=normal, load 4.3-4.7 (others' tests running):

                               main                               gorunner
    chain, -> agent running    58.5 / 51.1 / 40.2 / 47.0 ms       34.7 / 34.9 / 24.7 / 26.4 ms   (median)
    burst of 100, all running  2.74 / 2.13 / 2.05 / 2.12 s        1.84 / 1.50 / 1.46 / 1.52 s

(the first two pairs at load 4.3-4.7, the last two at 6.7-9.0; p90 of the chain 67.3 / 57.1 /
55.9 / 64.7 -> 43.3 / 46.8 / 31.1 / 36.6 ms). After merging main's one bind per run and its
shims' pid watch (both sides have them), load 5.3-7.5: chain 51.5 / 25.7 -> 29.7 / 26.1 ms,
--chain 40: 49.6 / 36.4 / 66.8 -> 30.6 / 45.1 / 37.5 ms; burst 2.47 / 2.32 -> 1.51 / 1.64 s. The goals (20 ms, a stage of 100 in 1 s) are not
met: what is left of a start is the shim's fork (~7 ms of CPU), bubblewrap and its cgroup
(~3.5 ms) and, in a burst, the shims polling for their command's pid (being fixed in jail.py).

--profile 20 (load 4.0; CPU per start, median, a step running `true`: the agent's rows include
the step's /bin/sh): interpreter alone 8.0 ms; `-m agent` 17.1 ms; `-S -P -c boot` 13.5 ms (21.5
without bytecode); the Go runner 3.9 ms (its own start ~1.8, of which the Go runtime ~1.3: a
static hello world costs that much); shim + bubblewrap + cgroup around /bin/true 10.6 ms.

Issue 25 item 4, the compiled shim (2026-12-07, fourth session), `--chain 20|30 --burst 100`,
DICE_LOCAL_SHIM=go against =python on one build, alternated, an engineer's tests running beside
(load 2-6), machine CPU per step from /proc/stat:
    go:     chain 13.0 / 17.0 / 12.2 ms (median), burst all running 999 / 914 / 928 ms, 19.9 / 18.0 / 18.3 ms CPU a step
    python: chain 13.7 / 10.4 / 13.8 ms,          burst all running 1122 / 984 / 1054 ms, 22.6 / 19.0 / 20.8 ms CPU a step
Session start (main 911e527, Python shim, load 0.4): chain 14.8 ms, burst 1180 ms, 23.2 ms CPU a step.
A compiled shim without a waiting one (started at each request, its command's process moved into
its cgroup then): chain 14-15 ms against the Python shim's 12-13 (the prepared move), burst the same.
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


PROFILE_CHILD = r"""
import json, os, statistics, sys
sys.path.insert(0, sys.argv[1])
import shim, jail  # as the process starter imports them
tmp, rounds, spec, nocg = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
folder = tmp + "/f"
def args(i, extra):
    return ["--log", f"{tmp}/l{i}", "--pidfile", f"{tmp}/p{i}", "--exitfile", f"{tmp}/e{i}", "--cwd", folder, *extra,
            "--", "/bin/true"]
cases = {
    "fork of the starter's child, exit": lambda i: os._exit(0),
    "fork, exec /bin/true": lambda i: os.execv("/bin/true", ["true"]),
    "shim, no sandbox": lambda i: os._exit(shim.main(args(i, []))),
    "shim + bubblewrap, no cgroup": lambda i: os._exit(shim.main(args(i, ["--sandbox", nocg]))),
    "shim + bubblewrap + cgroup": lambda i: os._exit(shim.main(args(i, ["--sandbox", spec]))),
}
out = {k: [] for k in cases}
for i in range(rounds):
    for n, (k, fn) in enumerate(cases.items()):
        pid = os.fork()
        if pid == 0:
            try:
                fn(f"{n}-{i}")
            finally:
                os._exit(1)
        _, _, ru = os.wait4(pid, 0)
        out[k].append(((ru.ru_utime + ru.ru_stime) * 1000, ru.ru_minflt))
print(json.dumps({k: [statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)] for k, v in out.items()}))
"""


def profile(rounds: int) -> None:
    """What each part of a step's start costs in CPU (see the module's docstring)."""
    import importlib.util
    import resource
    import subprocess

    import agent
    from scheduler.local import sandbox as sb
    from scheduler.local import steps as local_steps

    tmp = Path(tempfile.mkdtemp(prefix="dice-bench-profile-"))
    python = sb.AGENT_PYTHON
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": agent.ROOT}
    job = step(tmp, "p")
    Path(job.spec["workdir"]).mkdir(parents=True)
    Path(job.folder, "spec.json").write_text(json.dumps(job.spec))
    spec_path = str(Path(job.folder, "spec.json"))
    local_steps.agent_bytecode()
    cached = [importlib.util.cache_from_source(str(p)) for p in Path(agent.ROOT, "agent").glob("*.py")]
    hidden = [(c, c + ".hidden") for c in cached if os.path.exists(c)]

    def children_cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    go_spec = str(Path(job.folder, "spec-go.json"))
    Path(go_spec).write_text(json.dumps(local_steps.runner_spec(job.spec)))
    cases = {
        "interpreter alone (python -S -c pass)": [python, "-S", "-c", "pass"],
        "agent run, python -S -m agent": [python, "-S", "-m", "agent", "run", "--spec", spec_path],
        "agent run, -S -P -c boot": [python, "-S", "-P", "-c", local_steps.AGENT_BOOT, "run", "--spec", spec_path],
    }
    if os.access(local_steps.RUNNER, os.X_OK):
        cases["step runner, agent/bin/dice-step (Go)"] = [local_steps.RUNNER, "run", "--spec", go_spec]
    cpu = {name: [] for name in [*cases, "agent run, -S -P -c boot, no bytecode"]}
    for _ in range(rounds):
        for name, argv in cases.items():
            before = children_cpu()
            subprocess.run(argv, env=env, cwd=job.spec["workdir"], stdout=subprocess.DEVNULL)
            cpu[name].append((children_cpu() - before) * 1000)
        for c, h in hidden:
            os.replace(c, h)
        try:
            before = children_cpu()
            subprocess.run(cases["agent run, -S -P -c boot"], env={**env, "PYTHONDONTWRITEBYTECODE": "1"},
                           cwd=job.spec["workdir"], stdout=subprocess.DEVNULL)
            cpu["agent run, -S -P -c boot, no bytecode"].append((children_cpu() - before) * 1000)
        finally:
            for c, h in hidden:
                os.replace(h, c)
    print(f"load {os.getloadavg()[0]:.1f}; CPU per start, median of {rounds} (a step running `true`):")
    for name, values in cpu.items():
        print(f"  {name:48} {statistics.median(values):6.1f} ms")
    sandboxes = sb.Sandboxes(tmp / "local")
    folder = tmp / "f"
    folder.mkdir()
    sandboxes.own(folder, "bench-org")
    binds = [(str(folder), str(folder), "rw"), (local_steps.AGENT_DIR, local_steps.AGENT_DIR, "ro"),
             (sys.base_prefix, sys.base_prefix, "ro")]
    spec = sandboxes.spec("bench-org", binds=binds, cpu=1, hostname="bench")
    with_cg = sb.write_spec(str(tmp / "sandbox.json"), spec)
    without_cg = sb.write_spec(str(tmp / "sandbox-nocg.json"), {**spec, "cgroup": ""})
    here = str(Path(sb.SHIM).parent)
    done = subprocess.run([python, "-S", "-c", PROFILE_CHILD, here, str(tmp), str(rounds), with_cg, without_cg],
                          capture_output=True, text=True, cwd="/")
    if done.returncode != 0:
        print(done.stderr[-2000:])
        return
    print(f"  the shim's tree, forked from a process that imported only the shim (as the starter), "
          f"cgroups {sandboxes.isolation.cgroups or 'none'}:")
    for name, (ms, faults) in json.loads(done.stdout).items():
        print(f"  {name:48} {ms:6.1f} ms  {faults:5.0f} page faults")


def machine_cpu() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as fh:
        fields = [int(v) for v in fh.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chain", type=int, default=40)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    args = parser.parse_args()
    if args.profile:
        profile(args.profile)
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="dice-bench-steps-"))
    executor = LocalExecutor(tmp / "local", search_path=[])
    from scheduler.local.steps import step_runner

    print(f"runner: {step_runner()}; sandbox: {isolation().enabled} ({isolation().reason or 'bubblewrap'}); "
          f"cpus {os.cpu_count()}; load {os.getloadavg()[0]:.1f}")
    try:
        executor.start_step(step(tmp, "warm"))  # the process starter, the tenant's uid
        result(step(tmp, "warm"))
        running, done = [], []
        cpu0 = machine_cpu()
        for i in range(args.chain):
            job = step(tmp, f"c{i}")
            t0 = time.time()
            executor.start_step(job)
            res = result(job)
            running.append((res["started"] - t0) * 1000)
            done.append((time.time() - t0) * 1000)
        print(f"chain of {args.chain}: start -> agent running median {statistics.median(running):.1f} ms, "
              f"p90 {percentile(running, 90):.1f} ms; -> result written median {statistics.median(done):.1f} ms; "
              f"machine CPU {(machine_cpu() - cpu0) * 1000 / max(1, args.chain):.1f} ms a step")
        jobs = [step(tmp, f"b{i}") for i in range(args.burst)]
        cpu0 = machine_cpu()
        t0 = time.time()
        with executor.job_batch():
            for job in jobs:
                executor.start_step(job)
        results = [result(job) for job in jobs]
        cpu = machine_cpu() - cpu0
        last_running = max(r["started"] for r in results) - t0
        last_done = max(r["finished"] for r in results) - t0
        print(f"burst of {args.burst}: start -> every agent running {last_running * 1000:.0f} ms, "
              f"-> every result written {last_done * 1000:.0f} ms; machine CPU {cpu * 1000 / max(1, args.burst):.1f} ms a step")
    finally:
        executor.destroy_all()
        executor.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
