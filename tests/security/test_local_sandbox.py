"""An attacker's steps and services on the `local` cluster, against the console and another tenant.

Real processes in real sandboxes (bubblewrap, cgroups): nothing of the kernel is mocked. Each
attack prints `LEAK:<what>` when it succeeds. With the sandbox every attack must fail; the same
suite run once with the sandbox switched off must see the leaks, which proves it can detect them.
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
import time
from pathlib import Path

import pytest

from scheduler.base import Health, JobSpec, JobState
from scheduler.local import LocalExecutor
from scheduler.local.sandbox import Isolation, isolation
from scheduler.local.state import proc_start_time
from tests.local.conftest import group_of, wait_for
from tests.local.test_spawner import _command_pid


@pytest.fixture(autouse=True)
def _needs_the_sandbox():
    if not isolation().enabled:
        if os.environ.get("CI") == "true":  # CI installs bubblewrap and runs as root: it must be there
            pytest.fail(f"no sandbox on this machine: {isolation().reason}")
        pytest.skip(f"no sandbox on this machine: {isolation().reason} (needs root and bubblewrap)")

CONSOLE_ENV_SECRET = "CONSOLE-ENV-SECRET-7f3a"
VICTIM_SPEC = """
version: "2.0"
services:
  victim:
    cmd: 'echo VICTIM-LOG-LINE; while :; do sleep 600; done # VICTIM-PROC'
"""
# (The victim's own shell keeps VICTIM-PROC in its command line: a loop is never exec'd away.
# Its shim does not carry the command's line: it is forked from the process starter.)

# Every attack: a shell test that prints LEAK:<name> when it gets through.
ATTACKS = {
    "database": 'grep -q CONSOLE-DB-ROW "$DATA/dice.sqlite3"',
    "secret-key": 'grep -q CONSOLE-SECRET-KEY "$DATA/secret_key"',
    "encryption-key": 'grep -q CONSOLE-FERNET-KEY "$DATA/encryption_key"',
    "data-dir": 'ls "$DATA" | grep -q secret_key',
    "other-runtimes-state": 'ls "$DATA/local/runtimes" | grep -q "$VICTIM_NS"',
    "other-state-file": 'test -r "$VICTIM_STATE"',
    # another organization's secret variable in any process's environment (its replica's, its shim's)
    "other-environ": 'grep -qs "VICTIM""-SECRET-VAR" /proc/[0-9]*/environ',
    "see-console": 'test -e "/proc/$CONSOLE_PID/status"',
    "console-environ": f'grep -q {CONSOLE_ENV_SECRET} "/proc/$CONSOLE_PID/environ"',
    "signal-console": 'kill -0 "$CONSOLE_PID"',
    "other-runtime-dir": 'grep -q VICTIM-RELEASE-FILE "$VICTIM_WORK/secret.txt"',
    "other-logs": 'cat "$VICTIM_LOGS"/*.log | grep -q VICTIM-LOG-LINE',
    "other-placed-files": 'grep -q VICTIM-PLACED "$VICTIM_PLACED"',
    "other-caches": 'grep -q VICTIM-CACHE "$VICTIM_CACHE"',
    # (the pattern is split so this script's own command line does not match it)
    "other-processes": 'grep -qs "VICTIM""-PROC" /proc/[0-9]*/cmdline',
    "see-console-process": 'test -e "/proc/$REAL_CONSOLE_PID/status"',
    "write-data-dir": 'echo pwned > "$DATA_TARGET"',
    "write-system": 'echo pwned > "$SYSTEM_TARGET"',
    "write-console-code": 'echo pwned > "$CODE_TARGET"',
    "root": 'test "$(id -u)" = 0',
}
SANDBOX_LEAKS = set()  # what may get through with the sandbox: nothing


def attack_script() -> str:
    lines = [f"if {test} 2>/dev/null; then echo LEAK:{name}; fi" for name, test in ATTACKS.items()]
    return "\n".join([*lines, "echo ATTACKS-DONE"])


@pytest.fixture
def console(tmp_path):
    """A console's data directory as standalone makes it (database, keys, the local root inside)."""
    data = tmp_path / "var"
    data.mkdir()
    (data / "dice.sqlite3").write_text("CONSOLE-DB-ROW admin pbkdf2_sha256$...")
    (data / "secret_key").write_text("CONSOLE-SECRET-KEY")
    (data / "encryption_key").write_text("CONSOLE-FERNET-KEY")
    for name in ("dice.sqlite3", "secret_key", "encryption_key"):
        os.chmod(data / name, 0o600)
    return data


@pytest.fixture
def make_executor(console):
    """make(mode): an executor on the console's local root, with the sandbox ("sandbox") or with it
    switched off ("no-sandbox", to prove the suite sees leaks)."""
    made = []

    def make(mode: str = "sandbox", **options) -> LocalExecutor:
        isol = None if mode == "sandbox" else Isolation(False, "switched off to prove the suite sees leaks")
        root = options.pop("root", console / "local")
        executor = LocalExecutor(root, isolation=isol, allow_shared_tenancy=mode != "sandbox", **options)
        made.append(executor)
        return executor

    yield make
    for executor in made:
        try:
            executor.destroy_all()
        finally:
            executor.close()


def _stand_in_console(console: Path):
    """A process holding the console's secret in its environment (what /proc/<pid>/environ
    shows is the environment a process was started with)."""
    import subprocess

    env = {**os.environ, "DICE_SECRET_KEY": CONSOLE_ENV_SECRET}
    return subprocess.Popen(["sleep", "300"], env=env)


def _victim(executor: LocalExecutor, console: Path, tmp_path: Path) -> dict[str, str]:
    """Another organization: a running service with release files and logs, a job's placed
    file, a cache archive."""
    from scheduler.base import RuntimeRef

    release = tmp_path / "deploy" / "victim-release"
    release.mkdir(parents=True)
    (release / "secret.txt").write_text("VICTIM-RELEASE-FILE")
    runtime = RuntimeRef("victim-org", "vp", "va", "DEV", "main")
    executor.apply(group_of(VICTIM_SPEC, runtime, workdir=release,
                            secret_variables={"VICTIM_TOKEN": "VICTIM-SECRET-VAR-91c2"}))
    wait_for(lambda: executor.status(runtime).health is Health.HEALTHY, 30, "the victim's service")
    logs = executor.runtime_dir(runtime.namespace) / "logs"
    wait_for(lambda: "VICTIM-LOG-LINE" in (logs / "victim-0.log").read_text(), 15, "the victim's log line")
    steps = console / "pipelines" / "runs" / "1" / "steps" / "build-1"
    placed = str(steps / "spec.json")
    cache_dir = console / "pipelines" / "caches" / "7"
    cache = cache_dir / "abc.tar.gz"
    cache_dir.mkdir(parents=True)
    cache.write_text("VICTIM-CACHE")
    job = JobSpec(name="victim-step", command=["/bin/sh", "-c", "cat spec.json >/dev/null; exit 0"],
                  workdir=str(steps), namespace="pipelines-7", tenant="victim-org",
                  files={placed: '{"secret": "VICTIM-PLACED"}'}, mounts={str(cache_dir): "rw"})
    executor.run_job(job)
    wait_for(lambda: executor.job_status("victim-step", "pipelines-7").state.finished, 30, "the victim's step")
    assert executor.job_status("victim-step", "pipelines-7").state is JobState.SUCCEEDED
    return {"VICTIM_NS": executor.runtime_dir(runtime.namespace).name,
            "VICTIM_STATE": str(executor.runtime_dir(runtime.namespace) / "state.json"), "VICTIM_WORK": str(release), "VICTIM_LOGS": str(logs), "VICTIM_PLACED": placed,
            "VICTIM_CACHE": str(cache), "runtime": runtime}


def _attack_env(console: Path, console_pid: int, victim: dict, tmp_path: Path) -> dict[str, str]:
    return {
        "DATA": str(console), "DATA_TARGET": str(console / "pwned"), "CONSOLE_PID": str(console_pid), "REAL_CONSOLE_PID": str(os.getpid()),
        "SYSTEM_TARGET": f"/usr/local/dice-pwned-{os.getpid()}",
        "CODE_TARGET": str(Path(__file__).resolve().parents[2] / f"dice-pwned-{os.getpid()}"),
        **{k: v for k, v in victim.items() if k.startswith("VICTIM_")},
    }


WRITES = {"write-data-dir": "DATA_TARGET", "write-system": "SYSTEM_TARGET", "write-console-code": "CODE_TARGET"}


def _leaks(lines: list[str], env: dict[str, str]) -> set[str]:
    """What got through. A write counts when the file is on the host afterwards: inside the
    sandbox the same path may be the sandbox's own (its private /tmp)."""
    assert "ATTACKS-DONE" in lines, f"the attack script did not finish: {lines}"
    reported = {line.split(":", 1)[1] for line in lines if line.startswith("LEAK:")} - set(WRITES)
    return reported | {name for name, var in WRITES.items() if Path(env[var]).exists()}


@pytest.fixture
def cleanup_targets():
    yield
    for target in (Path(f"/usr/local/dice-pwned-{os.getpid()}"),
                   Path(__file__).resolve().parents[2] / f"dice-pwned-{os.getpid()}"):
        target.unlink(missing_ok=True)


@pytest.mark.parametrize("mode", ["sandbox", "no-sandbox"])
@pytest.mark.parametrize("kind", ["step", "service"])
def test_attacks_fail_in_the_sandbox_and_succeed_without_it(mode, kind, make_executor, console, tmp_path,
                                                              cleanup_targets):
    executor = make_executor(mode)
    stand_in = _stand_in_console(console)
    try:
        victim = _victim(executor, console, tmp_path)
        env = _attack_env(console, stand_in.pid, victim, tmp_path)
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
        script = exports + attack_script()
        if kind == "step":
            executor.run_job(JobSpec(name="attack", command=["/bin/sh", "-c", script], namespace="pipelines-9",
                                     tenant="attacker-org", workdir=str(tmp_path / "attacker-work")))
            wait_for(lambda: executor.job_status("attack", "pipelines-9").state.finished, 60, "the attack step")
            lines = [line.text for line in executor.job_logs("attack", "pipelines-9")]
        else:
            from scheduler.base import RuntimeRef

            runtime = RuntimeRef("attacker-org", "ap", "aa", "DEV", "main")
            body = "".join(f"      {line}\n" for line in (script + "\nexec sleep 600").splitlines())
            spec = 'version: "2.0"\nservices:\n  attack:\n    cmd: |\n' + body
            executor.apply(group_of(spec, runtime))
            wait_for(lambda: any(line.text == "ATTACKS-DONE" for line in executor.logs(runtime, "attack")),
                     60, "the attacking service's report")
            lines = [line.text for line in executor.logs(runtime, "attack")]
        leaks = _leaks(lines, env)
        if mode == "sandbox":
            assert leaks == SANDBOX_LEAKS, f"the sandbox let through: {sorted(leaks)}"
            # the victim is still serving, the stand-in console still alive
            assert executor.status(victim["runtime"]).health is Health.HEALTHY
            assert stand_in.poll() is None
        else:
            # Without the sandbox, the suite sees what an attacker gets: everything.
            assert leaks == set(ATTACKS), f"the suite missed leaks: {sorted(set(ATTACKS) - leaks)}"
    finally:
        stand_in.kill()
        stand_in.wait()


def test_files_belong_to_the_tenant_uid_and_secrets_only_to_it(make_executor, console, tmp_path):
    executor = make_executor()
    work = tmp_path / "step-work"
    placed = str(tmp_path / "step" / "spec.json")
    executor.run_job(JobSpec(name="own", command=["/bin/sh", "-c", "echo made > out.txt; id -u; id -G"],
                             workdir=str(work), namespace="pipelines-1", tenant="acme",
                             files={placed: '{"token": "s3cret"}'}, mounts={str(tmp_path / "step"): "rw"}))
    wait_for(lambda: executor.job_status("own", "pipelines-1").state.finished, 30, "the step")
    uid = executor.sandboxes.uid("acme")
    lines = [line.text for line in executor.job_logs("own", "pipelines-1")]
    assert lines[:2] == [str(uid), str(uid)]  # its own uid and group, no supplementary groups
    assert uid not in (0, os.geteuid()) and executor.sandboxes.uid("other-org") != uid
    assert (work / "out.txt").stat().st_uid == uid
    st = os.stat(placed)
    assert st.st_uid == uid and stat.S_IMODE(st.st_mode) == 0o600


def test_a_tenants_steps_started_together_on_a_fresh_root_all_start(make_executor, console, tmp_path):
    """A wide stage starts its steps at once, from several starter threads: each one writes the
    tenant's passwd and group files, and none may trip over another's temporary file."""
    executor = make_executor()
    names = [f"s{i}" for i in range(12)]
    for name in names:
        executor.run_job(JobSpec(name=name, command=["/bin/sh", "-c", f"echo {name}"], namespace="pipelines-2",
                                 tenant="wide-org", workdir=str(tmp_path / name)))
    wait_for(lambda: all(executor.job_status(n, "pipelines-2").state.finished for n in names), 30, "the steps")
    statuses = {name: executor.job_status(name, "pipelines-2") for name in names}
    assert {name: (st.state, st.message) for name, st in statuses.items()} == dict.fromkeys(names, (JobState.SUCCEEDED, ""))
    assert {name: [line.text for line in executor.job_logs(name, "pipelines-2")] for name in names} == {
        name: [name] for name in names}


def test_memory_hog_dies_alone(make_executor, console, tmp_path):
    executor = make_executor()
    victim = _victim(executor, console, tmp_path)
    hog = "python3 -c 'b = bytearray(1); exec(\"while True: b += bytearray(8 << 20)\")'"
    executor.run_job(JobSpec(name="hog", command=["/bin/sh", "-c", hog], namespace="pipelines-9",
                             tenant="attacker-org", mem=64, timeout=60))
    wait_for(lambda: executor.job_status("hog", "pipelines-9").state.finished, 60, "the hog to die")
    status = executor.job_status("hog", "pipelines-9")
    assert status.state is JobState.FAILED
    if executor.sandboxes.isolation.cgroups:
        assert status.message == "killed by SIGKILL"  # the cgroup's OOM killer, not a MemoryError
    assert executor.status(victim["runtime"]).health is Health.HEALTHY


def test_fork_bomb_is_contained(make_executor, console, tmp_path, monkeypatch):
    monkeypatch.setenv("DICE_LOCAL_MAX_PIDS", "64")
    executor = make_executor()
    victim = _victim(executor, console, tmp_path)
    bomb = "bomb() { bomb | bomb & }; bomb; sleep 30"
    started = time.monotonic()
    executor.run_job(JobSpec(name="bomb", command=["/bin/bash", "-c", bomb], namespace="pipelines-9",
                             tenant="attacker-org", cpu=0.5, timeout=4))
    time.sleep(2)
    # while it rages: the console answers, the victim serves, the bomb has few processes
    assert executor.status(victim["runtime"]).health is Health.HEALTHY
    uid = executor.sandboxes.uid("attacker-org")
    assert len(_processes_of(uid)) <= 64 + 8
    wait_for(lambda: executor.job_status("bomb", "pipelines-9").state.finished, 30, "the bomb's timeout")
    assert executor.job_status("bomb", "pipelines-9").state is JobState.FAILED
    wait_for(lambda: not _processes_of(uid), 15, "every process of the bomb gone")
    assert time.monotonic() - started < 40
    assert executor.status(victim["runtime"]).health is Health.HEALTHY


def _processes_of(uid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid and proc_start_time(int(entry)) is not None:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def test_a_service_gets_its_limits(make_executor):
    from scheduler.base import RuntimeRef

    executor = make_executor()
    runtime = RuntimeRef("acme", "shop", "limits", "DEV", "main")
    spec = ('version: "2.0"\nservices:\n  web:\n    cmd: echo "nofile=$(ulimit -n)"; exec sleep 600\n'
            '    resources: {cpu: 0.5, mem: 96}\n')
    executor.apply(group_of(spec, runtime))
    line = wait_for(lambda: [entry.text for entry in executor.logs(runtime, "web")], 20, "output")[0]
    assert line == "nofile=4096"
    pid = wait_for(lambda: executor.pids(runtime).get("web-0", {}).get("process"), 20, "the process")
    cgroups = _cgroup_files(pid)
    if executor.sandboxes.isolation.cgroups == "v1":
        assert cgroups["memory"]("memory.limit_in_bytes") == str(96 * 1024 * 1024)
        assert cgroups["cpu"]("cpu.cfs_quota_us") == "50000" and cgroups["cpu"]("cpu.cfs_period_us") == "100000"
        assert cgroups["pids"]("pids.max") == "512"
    elif executor.sandboxes.isolation.cgroups == "v2":
        assert cgroups[""]("memory.max") == str(96 * 1024 * 1024)
        assert cgroups[""]("cpu.max") == "50000 100000" and cgroups[""]("pids.max") == "512"


def _cgroup_files(pid: int) -> dict:
    """controller -> reader of that controller's files for the cgroup `pid` is in (from the host)."""
    found = {}
    for entry in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, names, path = entry.split(":", 2)
        for name in names.split(",") if names else [""]:
            base = Path("/sys/fs/cgroup") / name / path.lstrip("/") if name else Path("/sys/fs/cgroup") / path.lstrip("/")
            found[name] = lambda file, base=base: (base / file).read_text().strip()
    return found


def _shim_kinds() -> list:
    from scheduler.local.supervisor import SHIM_PROGRAM

    built = os.path.exists(SHIM_PROGRAM) or os.environ.get("CI") == "true"  # CI builds it: it must be there
    return ["python", pytest.param("go", marks=pytest.mark.skipif(not built, reason="dice-shim not built (make install)"))]


# Known, not yet fixed (issue 25, sixth session of 2026-12-07): an idle CPU group (cpu.idle, or
# the lowest weight) for idle jobs made rollouts after a worker takeover end 5.2-10.3 s after it
# in tests/scale/test_production.py (3.9 s without), for a cause not yet found; the shims were
# put back. These fail until a job's priority reaches its group.
PRIORITY_GAP = pytest.mark.xfail(strict=True, reason="a job's CPU priority does not reach its sandbox's CPU group")


@PRIORITY_GAP
@pytest.mark.parametrize("shim", _shim_kinds())
def test_a_jobs_cpu_group_carries_its_priority(shim, make_executor, monkeypatch, tmp_path):
    """A sandboxed command competes with the rest of the machine as its CPU group, at the group's
    weight, whatever its own policy: SCHED_IDLE jobs in groups of default weight took as much of
    a core each as the console. The group is made to yield as the job's priority says."""
    monkeypatch.setenv("DICE_LOCAL_SHIM", shim)
    kinds = {"idle": make_executor(), "nice": make_executor(root=tmp_path / "other", job_priority="10")}
    for kind, executor in kinds.items():
        executor.run_job(JobSpec(name=kind, command=["sleep", "30"], cpu=0.5))
    for kind, executor in kinds.items():
        pid = _command_pid(executor, kind, "")
        cgroups = _cgroup_files(pid)
        version = executor.sandboxes.isolation.cgroups
        if version == "v1":
            assert cgroups["cpu"]("cpu.cfs_quota_us") == "100000"  # the job's floor of one core (its quota)
            if kind == "idle":
                try:
                    assert cgroups["cpu"]("cpu.idle") == "1", "an idle job's group must be idle"
                except FileNotFoundError:  # before Linux 5.15: the lowest weight
                    assert cgroups["cpu"]("cpu.shares") == "2"
            else:
                assert cgroups["cpu"]("cpu.shares") == "110", "nice 10's weight"
        elif version == "v2" and "cpu" in cgroups:
            if kind == "idle":
                assert cgroups[""]("cpu.idle") == "1"
            else:
                assert cgroups[""]("cpu.weight.nice") == "10"
        else:
            pytest.skip(f"no CPU group here (cgroups {version!r})")
        executor.cancel_job(kind)


@PRIORITY_GAP
def test_idle_jobs_that_spin_leave_the_console_its_cpu(make_executor):
    """Three idle jobs spinning on the console's CPU: the console's work (a spinning process at
    normal priority on the same CPU) gets it, the jobs get what it leaves. Before their groups
    yielded, each job got as much as the console (a quarter of the CPU for it)."""
    import subprocess

    executor = make_executor()
    spin = "import os\nos.sched_setaffinity(0, {0})\nwhile True: pass\n"
    names = [f"spin-{i}" for i in range(3)]
    for name in names:
        executor.run_job(JobSpec(name=name, command=["python3", "-c", spin], cpu=1))
    pids = [_command_pid(executor, name, "") for name in names]

    def cpu(pid: int) -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    console = subprocess.Popen([sys.executable, "-c", spin])
    try:
        time.sleep(0.5)  # everyone spinning
        before = [cpu(pid) for pid in pids], cpu(console.pid)
        time.sleep(2)
        after = [cpu(pid) for pid in pids], cpu(console.pid)
    finally:
        console.kill()
        console.wait()
        for name in names:
            executor.cancel_job(name)
    jobs = sum(after[0]) - sum(before[0])
    theirs = after[1] - before[1]
    assert theirs > 0.3, f"the console's process ran {theirs:.2f} s of 2 s"
    assert jobs < theirs / 5, f"three idle jobs took {jobs:.2f} s of CPU 0, the console {theirs:.2f} s"


def test_a_sandboxed_service_is_stopped_gracefully_with_its_stop_signal(make_executor):
    """bubblewrap's --new-session makes the sandbox's init a session and group leader and the
    command runs in that group: its shim signalled a group named after the command's own pid,
    which does not exist, so the stop signal reached nothing and the service was killed after
    the grace period, its TERM handler never run."""
    from scheduler.base import RuntimeRef

    executor = make_executor()
    runtime = RuntimeRef("acme", "shop", "graceful", "DEV", "main")
    spec = ('version: "2.0"\nservices:\n  web:\n'
            '    cmd: trap "echo got-TERM; exit 0" TERM; echo ready; while :; do sleep 0.1; done\n')
    executor.apply(group_of(spec, runtime))
    wait_for(lambda: "ready" in [entry.text for entry in executor.logs(runtime, "web")], 20, "the service running")
    started = time.monotonic()
    executor.scale(runtime, "web", 0)
    wait_for(lambda: "got-TERM" in [entry.text for entry in executor.logs(runtime, "web")], 10, "its TERM handler")
    assert time.monotonic() - started < 4, "stopped by the grace period's SIGKILL, not by its stop signal"
