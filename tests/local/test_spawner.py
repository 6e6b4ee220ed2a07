"""The process starter as a pre-forking server (scheduler/local/spawner.py): each shim is forked
from a server that never reads a request, so a shim carries nothing of the console (its
environment, its descriptors) nor of the starts before it (another tenant's environment)."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from scheduler.base import JobSpec, JobState
from scheduler.local import supervisor
from scheduler.local.supervisor import STARTER
from tests.local.conftest import wait_for
from tests.local.test_jobs_and_cron import _ppid, finished


@pytest.fixture(autouse=True)
def python_shim(monkeypatch):
    """These test the Python shim's process starter: the compiled shim (the default where it is
    built) is tests/local/test_waiting_shim.py's."""
    monkeypatch.setenv("DICE_LOCAL_SHIM", "python")


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _memory_holds(pid: int, needle: bytes) -> bool:
    """Whether any readable mapping of the process holds `needle` (root reads /proc/<pid>/mem)."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            fields = line.split()
            if "r" not in fields[1] or (len(fields) > 5 and fields[5] in ("[vvar]", "[vsyscall]")):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            try:
                mem.seek(start)
                if needle in mem.read(end - start):
                    return True
            except OSError:
                continue
    return False


def _command_pid(executor, name: str, namespace: str) -> int:
    """The job's command as the host sees it (the group its shim wrote to the pid file)."""
    pidfile = Path(wait_for(lambda: executor.jobs[(namespace, name)].get("pidfile"), what=f"{name}'s pid file"))
    return wait_for(lambda: pidfile.exists() and json.loads(pidfile.read_text())["pid"], what=f"{name}'s command")


def _job_pid(executor, name: str, namespace: str = "") -> int:
    return wait_for(lambda: executor.jobs[(namespace, name)].get("pid"), what=f"{name}'s shim")


@pytest.mark.skipif(os.geteuid() != 0, reason="reads other processes' memory and environment: needs root")
def test_a_shim_holds_nothing_of_the_console_nor_of_the_start_before_it(executor, monkeypatch):
    monkeypatch.setenv("DICE_SECRET_KEY", "console-secret-" + uuid.uuid4().hex)
    first_marker = "tenant-a-secret-" + uuid.uuid4().hex
    executor.run_job(JobSpec(name="a", namespace="tenant-a", tenant="org-a", command=["sleep", "30"],
                             envs={"A_PASSWORD": first_marker}))
    first = _job_pid(executor, "a", "tenant-a")
    executor.run_job(JobSpec(name="b", namespace="tenant-b", tenant="org-b", command=["sleep", "30"],
                             envs={"B_VALUE": "b"}))
    second = _job_pid(executor, "b", "tenant-b")

    server = STARTER.proc.pid
    assert _ppid(first) == _ppid(second) == server  # forked by the server, not by the console
    # The server started with PATH alone; each command has its job's environment and nothing else.
    assert set(_environ(server)) <= {"PATH"}
    command_a, command_b = (_command_pid(executor, name, ns) for name, ns in (("a", "tenant-a"), ("b", "tenant-b")))
    assert _environ(command_a)["A_PASSWORD"] == first_marker
    assert "DICE_SECRET_KEY" not in _environ(command_a) and "DICE_SECRET_KEY" not in _environ(command_b)
    assert "A_PASSWORD" not in _environ(command_b) and _environ(command_b)["B_VALUE"] == "b"
    # Nor anywhere in its memory: the server never read the first request, the second shim was
    # forked from it. (The first shim itself holds its own value, as it must.)
    assert _memory_holds(first, first_marker.encode())
    assert not _memory_holds(second, first_marker.encode())
    assert not _memory_holds(server, first_marker.encode())
    # Descriptors: /dev/null for the standard streams, none of the console's pipes or sockets.
    fds = {int(fd): os.readlink(f"/proc/{second}/fd/{fd}") for fd in os.listdir(f"/proc/{second}/fd")}
    assert {fds[0], fds[1], fds[2]} == {"/dev/null"}
    console_pipes = {os.readlink(f"/proc/{server}/fd/{fd}") for fd in (0, 1)}
    assert not console_pipes & set(fds.values()), fds
    for name, ns in (("a", "tenant-a"), ("b", "tenant-b")):
        executor.cancel_job(name, ns)
        assert finished(executor, name, ns).state is JobState.CANCELLED


def test_a_started_command_sees_only_its_job_environment(executor, monkeypatch):
    monkeypatch.setenv("DICE_SECRET_KEY", "console-secret")
    executor.run_job(JobSpec(name="env", command=["/bin/sh", "-c", "env; ls /proc/self/fd"], envs={"MINE": "1"}))
    assert finished(executor, "env").state is JobState.SUCCEEDED
    text = "\n".join(line.text for line in executor.job_logs("env"))
    assert "MINE=1" in text and "console-secret" not in text
    # /proc/self/fd of `ls`: 0, 1, 2 and the directory it reads; nothing inherited
    fds = {int(line) for line in re.findall(r"(?m)^(\d+)$", text)}
    assert fds <= {0, 1, 2, 3}, text


def test_the_server_refuses_a_bad_request_and_goes_on(tmp_path):
    """A request it cannot read is answered with an error by the child that took it; the server
    forks the next child and the next request is served."""
    proc = subprocess.Popen([sys.executable, "-S", supervisor.SPAWNER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env={"PATH": os.environ["PATH"]}, cwd="/")
    try:
        def ask(body: bytes) -> dict:
            proc.stdin.write(struct.pack(">I", len(body)) + body)
            proc.stdin.flush()
            return json.loads(proc.stdout.readline())

        assert "error" in ask(b"{not json")
        assert "error" in ask(json.dumps({"shim": "not a list", "env": {}}).encode())
        log, pid, exit_ = tmp_path / "ok.log", tmp_path / "ok.pid", tmp_path / "ok.exit"
        answer = ask(json.dumps({"shim": ["--log", str(log), "--pidfile", str(pid), "--exitfile", str(exit_),
                                          "--", "/bin/sh", "-c", "echo served"], "env": {"PATH": "/usr/bin:/bin"},
                                 "priority": ""}).encode())
        assert answer.get("pid", 0) > 0
        wait_for(exit_.exists, what="the shim's exit file")
        assert json.loads(exit_.read_text())["code"] == 0 and "served" in log.read_text()
    finally:
        proc.stdin.close()  # the end of its input: the waiting child and the server exit
        assert proc.wait(10) == 0


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _cgroup_of(pid: int, controller: str) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        if controller in names.split(","):
            return path
    return ""


@pytest.mark.skipif(os.geteuid() != 0, reason="reads other processes' memory; cgroups need root")
def test_the_next_command_waits_in_its_cgroup_holding_nothing_and_becomes_the_sandboxed_command(executor, tmp_path):
    """The waiting child prepares its command's process before any request (shim.Prepared): that
    process is already in the cgroup named after the shim-to-be, holds nothing of the start before
    it (memory, descriptors), and the next sandboxed start makes it the command (bubblewrap), under
    the limits its shim wrote; a start without a sandbox lets it go and leaves no cgroup."""
    version = executor.sandboxes.isolation.cgroups
    if not version:
        pytest.skip("no cgroups here: nothing is prepared")
    controller = "cpu" if version == "v1" else ""
    marker = "tenant-a-secret-" + uuid.uuid4().hex
    executor.run_job(JobSpec(name="a", namespace="tenant-a", tenant="org-a", command=["sleep", "30"],
                             envs={"A_PASSWORD": marker}))
    first = _job_pid(executor, "a", "tenant-a")
    server = STARTER.proc.pid

    def waiting(*shims: int) -> tuple[int, int] | None:
        for child in _children(server):
            if child not in shims and _children(child):
                return child, _children(child)[0]
        return None

    shim_to_be, prepared = wait_for(lambda: waiting(first), what="the waiting child and its prepared process")
    wait_for(lambda: _cgroup_of(prepared, controller).endswith(f"/dice-{shim_to_be}"), what="the prepared move")
    assert not _memory_holds(prepared, marker.encode()) and not _memory_holds(shim_to_be, marker.encode())

    def links() -> set[str]:
        return {os.readlink(f"/proc/{prepared}/fd/{fd}") for fd in os.listdir(f"/proc/{prepared}/fd")}

    # Joining the cgroup opens each hierarchy's cgroup.procs in turn (cpu is not the last on v1):
    # once the join is over it holds its pipes and /dev/null alone; anything else stays and fails.
    def only_pipes() -> set[str] | None:
        now = links()
        return now if all(link.startswith("pipe:") or link == "/dev/null" for link in now) else None

    wait_for(only_pipes, timeout=10, what=f"the prepared process to hold only its pipes and /dev/null ({links()})")

    executor.run_job(JobSpec(name="b", namespace="tenant-b", tenant="org-b", command=["sleep", "30"], cpu=0.5))
    assert _job_pid(executor, "b", "tenant-b") == shim_to_be
    command = _command_pid(executor, "b", "tenant-b")
    assert _cgroup_of(command, controller).endswith(f"/dice-{shim_to_be}")
    assert os.path.basename(os.readlink(f"/proc/{prepared}/exe")) == "bwrap"  # it became the sandbox
    if version == "v1":
        quota = Path(f"/sys/fs/cgroup/cpu{_cgroup_of(command, 'cpu')}/cpu.cfs_quota_us").read_text().strip()
        assert quota == "100000"  # the job's cpu, raised to the floor of 1: written before its command ran

    unsandboxed, unprepared = wait_for(lambda: waiting(first, shim_to_be), what="the next one")
    exitfile = tmp_path / "c.exit"
    shim = STARTER.start(["--log", str(tmp_path / "c.log"), "--pidfile", str(tmp_path / "c.pid"),
                          "--exitfile", str(exitfile), "--", "/bin/true"], {"PATH": "/usr/bin:/bin"})
    assert shim == unsandboxed
    wait_for(exitfile.exists, what="the unsandboxed start's end")
    assert json.loads(exitfile.read_text())["code"] == 0
    wait_for(lambda: not os.path.exists(f"/proc/{unprepared}"), what="the unused prepared process's end")
    root = "/sys/fs/cgroup/cpu" if version == "v1" else "/sys/fs/cgroup"
    assert not list(Path(root).glob(f"**/dice-{unsandboxed}"))
    for name, ns in (("a", "tenant-a"), ("b", "tenant-b")):
        executor.cancel_job(name, ns)
