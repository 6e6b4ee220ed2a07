"""The compiled shim started ahead of its request (`dice-shim --wait`, agent/gorunner/prepared.go):
the console keeps one waiting shim (supervisor.STARTER.waiting); a start writes its request to it
and starts the next. Like the Python starter's shims (tests/local/test_spawner.py), a waiting shim
holds nothing of the console nor of the starts before it; as root with cgroups it prepares the
command's process in its cgroup, which a sandboxed start takes and any other start lets go."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from scheduler.base import JobSpec, JobState
from scheduler.local import jail, supervisor
from scheduler.local.supervisor import GO_ENV, STARTER
from tests.local.conftest import wait_for
from tests.local.test_jobs_and_cron import finished
from tests.local.test_spawner import _cgroup_of, _command_pid, _environ, _job_pid, _memory_holds

needs_shim = pytest.mark.skipif(
    not os.access(supervisor.SHIM_PROGRAM, os.X_OK),
    reason=f"the compiled shim {supervisor.SHIM_PROGRAM} is not built (`make runner` with Go installed)",
)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="reads other processes' memory and environment: needs root")


def _drop_waiting() -> None:
    """End the console's waiting shim (the end of its input: it exits and removes what it made),
    so no test leaves one behind for the next (STARTER is the module's singleton)."""
    with STARTER.lock:
        waiting, STARTER.waiting = STARTER.waiting, None
    if waiting is None:
        return
    with contextlib.suppress(OSError):
        waiting.stdin.close()
    try:
        waiting.wait(10)
    except subprocess.TimeoutExpired:
        waiting.kill()
        waiting.wait(5)


@pytest.fixture(autouse=True)
def go_shim(monkeypatch):
    monkeypatch.setenv("DICE_LOCAL_SHIM", "go")
    _drop_waiting()  # one left by an earlier test (maybe of another program) starts nothing here
    yield
    _drop_waiting()


def _children(pid: int) -> list[int]:
    """Children of every thread of `pid` (a Go program forks from whichever thread runs)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def _links(pid: int) -> dict[int, str]:
    links = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            links[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
    return links


# The Go runtime's own (1.25 on): its poller, and the cgroup CPU limit files it reads at start
# (container-aware GOMAXPROCS), opened read-only and kept open.
GO_RUNTIME = ("anon_inode:[eventpoll]", "anon_inode:[eventfd]", "anon_inode:[pidfd]")
GO_CGROUP_FILES = ("cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.max")


def _its_own(link: str) -> bool:
    """A descriptor a waiting shim or its prepared process opens itself: /dev/null, pipes, the Go
    runtime's poller and cgroup CPU limit files."""
    if link == "/dev/null" or link.startswith(("pipe:", *GO_RUNTIME)):
        return True
    return link.startswith(jail.CGROUP_ROOT + "/") and os.path.basename(link) in GO_CGROUP_FILES


def _cgroup_dirs(version: str, shim: int) -> list[str]:
    """The cgroup directories a shim of pid `shim` makes (jail.go cgroup.make), wherever they are."""
    controllers = ("",) if version == "v2" else ("memory", "cpu", "pids")
    return [f"{jail.CGROUP_ROOT}{'/' + c if c else ''}{jail._own_cgroup(c).rstrip('/')}/dice-{shim}"
            for c in controllers]


def _cgroups() -> str:
    """The cgroup version a root shim prepares in ("" when it prepares nothing)."""
    return jail.cgroup_version() if os.geteuid() == 0 else ""


def _waiting_pid() -> int:
    return wait_for(lambda: STARTER.waiting is not None and STARTER.waiting.poll() is None and STARTER.waiting.pid,
                    what="a waiting shim")


@needs_shim
def test_processes_are_started_by_the_waiting_shim_which_is_replaced_when_it_dies(executor):
    """The console never forks a shim at the start: the shim is the one waiting for it; the next
    waiting shim is started at once; one killed with SIGKILL is replaced at the next start, and
    what it started keeps running."""
    executor.run_job(JobSpec(name="zero", command=["/bin/true"]))
    assert finished(executor, "zero").state is JobState.SUCCEEDED
    waiting = _waiting_pid()
    executor.run_job(JobSpec(name="first", command=["sleep", "30"]))
    first = _job_pid(executor, "first")
    assert first == waiting != os.getpid()  # the waiting shim took the request: no fork for it
    command = _command_pid(executor, "first", "")
    record = json.loads(Path(executor.jobs[("", "first")]["pidfile"]).read_text())
    assert record["shim"] == first and record["pid"] == command != first
    nxt = _waiting_pid()
    assert nxt != first

    killed = STARTER.waiting
    version = _cgroups()
    prepared = version and wait_for(lambda: (c := _children(killed.pid)) and c[0], timeout=10,
                                    what="the waiting shim's prepared process")
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(5)
    if prepared:  # its prepared process ends with it; the console's sweep removes its cgroup
        wait_for(lambda: _gone(prepared), timeout=10, what="the killed waiting shim's prepared process to end")
        if executor.sandboxes.enabled and executor.sandboxes.isolation.cgroups == version:
            wait_for(lambda: executor.sandboxes.sweep() >= 0 and not [
                d for d in _cgroup_dirs(version, killed.pid) if os.path.exists(d)], timeout=10,
                what="the sweep to remove the killed shim's cgroup")
    executor.run_job(JobSpec(name="second", command=["/bin/sh", "-c", "echo again"]))
    assert finished(executor, "second").state is JobState.SUCCEEDED
    assert "again" in "\n".join(line.text for line in executor.job_logs("second"))
    second = executor.jobs[("", "second")]["pid"]
    assert second not in (killed.pid, first)
    assert STARTER.waiting is not None and STARTER.waiting.pid not in (killed.pid, second)
    assert executor.job_status("first").state is JobState.RUNNING  # survived
    executor.cancel_job("first")
    assert finished(executor, "first").state is JobState.CANCELLED
    wait_for(lambda: not os.path.exists(f"/proc/{command}"), timeout=10, what="the cancelled command's end")


def _gone(pid: int) -> bool:
    """Ended: no such process, or a zombie its new parent has yet to reap."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return raw[raw.rfind(")") + 2:].split()[0] in ("Z", "X")


@needs_shim
@needs_root
def test_a_waiting_shim_holds_nothing_of_the_console_nor_of_the_start_before_it(executor, monkeypatch):
    secret = "console-secret-" + uuid.uuid4().hex
    monkeypatch.setenv("DICE_SECRET_KEY", secret)
    marker = "tenant-a-secret-" + uuid.uuid4().hex
    executor.run_job(JobSpec(name="a", namespace="tenant-a", tenant="org-a", command=["sleep", "30"],
                             envs={"A_PASSWORD": marker}))
    first = _job_pid(executor, "a", "tenant-a")
    waiting = STARTER.waiting  # started once a's request was written
    assert waiting is not None and waiting.pid != first
    shim = waiting.pid

    # Its environment: the Go runtime's settings, nothing of the console's nor of a's request.
    assert set(_environ(shim)) == set(GO_ENV)
    assert not _memory_holds(shim, marker.encode()) and not _memory_holds(shim, secret.encode())
    assert _memory_holds(first, marker.encode())  # the shim that took a's request has it, as it must
    # Descriptors: its request's pipe and /dev/null; what else it holds is its own (the Go runtime's
    # poller, the pipes of its prepared process), nothing the console has open.
    fds = _links(shim)
    assert fds[0] == os.readlink(f"/proc/self/fd/{waiting.stdin.fileno()}") and fds[0].startswith("pipe:")
    assert fds[1] == fds[2] == "/dev/null"
    assert all(_its_own(link) for link in fds.values()), fds
    # By name: an anonymous inode's ("anon_inode:[eventpoll]") is every process's own poller's.
    console = {link for link in _links(os.getpid()).values() if not link.startswith("anon_inode:")}
    assert set(fds.values()) & console <= {"/dev/null", fds[0]}, fds

    executor.run_job(JobSpec(name="b", namespace="tenant-b", tenant="org-b", command=["sleep", "30"],
                             envs={"B_VALUE": "b"}))
    assert _job_pid(executor, "b", "tenant-b") == shim
    command_a, command_b = (_command_pid(executor, name, ns) for name, ns in (("a", "tenant-a"), ("b", "tenant-b")))
    assert _environ(command_a)["A_PASSWORD"] == marker and "DICE_SECRET_KEY" not in _environ(command_a)
    assert "A_PASSWORD" not in _environ(command_b) and _environ(command_b)["B_VALUE"] == "b"
    assert "DICE_SECRET_KEY" not in _environ(command_b)
    assert not _memory_holds(shim, marker.encode())  # b's shim, which never saw a's request
    for name, ns in (("a", "tenant-a"), ("b", "tenant-b")):
        executor.cancel_job(name, ns)
        assert finished(executor, name, ns).state is JobState.CANCELLED


@needs_shim
@needs_root
def test_the_waiting_shim_prepares_its_command_in_its_cgroup_which_a_sandboxed_start_takes(executor, tmp_path):
    """The waiting shim's prepared process is in the cgroup named after the shim, holds nothing of
    the start before it, and the next sandboxed start makes it the command (bubblewrap) under the
    limits its shim wrote; a start without a sandbox lets it go and leaves no cgroup."""
    version = executor.sandboxes.isolation.cgroups
    if not version or not executor.sandboxes.enabled:
        pytest.skip("no sandbox with cgroups here: nothing is prepared")
    controller = "cpu" if version == "v1" else ""
    marker = "tenant-a-secret-" + uuid.uuid4().hex
    executor.run_job(JobSpec(name="a", namespace="tenant-a", tenant="org-a", command=["sleep", "30"],
                             envs={"A_PASSWORD": marker}))
    first = _job_pid(executor, "a", "tenant-a")
    shim_to_be = STARTER.waiting.pid
    assert shim_to_be != first

    def prepared_of(shim: int) -> int | None:
        children = _children(shim)
        return children[0] if len(children) == 1 else None

    prepared = wait_for(lambda: prepared_of(shim_to_be), timeout=10, what="the waiting shim's prepared process")
    assert os.path.basename(os.readlink(f"/proc/{prepared}/exe")) == "dice-shim"
    assert Path(f"/proc/{prepared}/cmdline").read_bytes().split(b"\0")[:2] == [b"dice-shim", b"_enter"]
    wait_for(lambda: _cgroup_of(prepared, controller).endswith(f"/dice-{shim_to_be}"), timeout=10,
             what="the prepared process's move into its cgroup")
    assert not _memory_holds(prepared, marker.encode()) and not _memory_holds(shim_to_be, marker.encode())
    assert set(_environ(prepared)) <= set(GO_ENV)

    # Joining the cgroup opens each hierarchy's cgroup.procs in turn: once the join is over it
    # holds its own alone (pipes, /dev/null, its runtime's); anything else stays and fails.
    def only_its_own() -> set[str] | None:
        now = set(_links(prepared).values())
        return now if all(_its_own(link) for link in now) else None

    wait_for(only_its_own, timeout=10, what=f"the prepared process to hold only its own ({_links(prepared)})")

    executor.run_job(JobSpec(name="b", namespace="tenant-b", tenant="org-b", command=["sleep", "30"], cpu=0.5))
    assert _job_pid(executor, "b", "tenant-b") == shim_to_be
    command = _command_pid(executor, "b", "tenant-b")
    assert _cgroup_of(command, controller).endswith(f"/dice-{shim_to_be}")
    assert os.path.basename(os.readlink(f"/proc/{prepared}/exe")) == "bwrap"  # it became the sandbox
    # Its runtime's descriptors went with the exec: the sandbox and the command hold their streams.
    assert not [link for link in _links(prepared).values() if link.startswith(jail.CGROUP_ROOT)], _links(prepared)
    assert sorted(_links(command)) == [0, 1, 2], _links(command)
    record = json.loads(Path(executor.jobs[("tenant-b", "b")]["pidfile"]).read_text())
    # bubblewrap (the prepared process) forks the sandbox's init, the command's process group
    assert record["shim"] == shim_to_be and record["init"] in _children(prepared), record
    assert record["group"] == record["init"] and record["pid"] == command, record
    if version == "v1":
        base = f"{jail.CGROUP_ROOT}/cpu{_cgroup_of(command, 'cpu')}"
        # cpu 0.5 raised to the job floor of 1 (DICE_LOCAL_JOB_CPU_FLOOR): 1 x the 100 ms period
        assert Path(f"{base}/cpu.cfs_period_us").read_text().strip() == "100000"
        assert Path(f"{base}/cpu.cfs_quota_us").read_text().strip() == "100000"
    else:
        base = f"{jail.CGROUP_ROOT}{_cgroup_of(command, '')}"
        assert Path(f"{base}/cpu.max").read_text().split() == ["100000", "100000"]

    unsandboxed = STARTER.waiting.pid
    unprepared = wait_for(lambda: prepared_of(unsandboxed), timeout=10, what="the next prepared process")
    wait_for(lambda: _cgroup_of(unprepared, controller).endswith(f"/dice-{unsandboxed}"), timeout=10,
             what="the next prepared process's move")
    exitfile = tmp_path / "c.exit"
    shim = STARTER.start(["--log", str(tmp_path / "c.log"), "--pidfile", str(tmp_path / "c.pid"),
                          "--exitfile", str(exitfile), "--", "/bin/true"], {"PATH": "/usr/bin:/bin"})
    assert shim == unsandboxed
    wait_for(exitfile.exists, what="the unsandboxed start's end")
    assert json.loads(exitfile.read_text())["code"] == 0
    wait_for(lambda: not os.path.exists(f"/proc/{unprepared}"), timeout=10, what="the unused prepared process's end")
    wait_for(lambda: not os.path.exists(f"/proc/{unsandboxed}"), timeout=10, what="the unsandboxed shim's end")
    assert not [d for d in _cgroup_dirs(version, unsandboxed) if os.path.exists(d)]
    for name, ns in (("a", "tenant-a"), ("b", "tenant-b")):
        executor.cancel_job(name, ns)
        assert finished(executor, name, ns).state is JobState.CANCELLED


def _wait_shim() -> subprocess.Popen:
    return subprocess.Popen([supervisor.SHIM_PROGRAM, "--wait"], env=GO_ENV, cwd="/", stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


@needs_shim
@pytest.mark.parametrize("request_body", [b"{not json", b'{"args": []}', b'{"args": "x", "env": {}}', b""])
def test_a_waiting_shim_refuses_a_bad_request_and_leaves_nothing(request_body):
    """A request it cannot read: exit 2 and why on stderr; none at all (the end of its input):
    exit 0. Either way its prepared process and cgroup are gone."""
    version = _cgroups()
    proc = _wait_shim()
    try:
        prepared = None
        if version:  # let it prepare first: what it made must go too
            prepared = wait_for(lambda: (c := _children(proc.pid)) and c[0], timeout=10,
                                what="the prepared process")
            wait_for(lambda: all(os.path.isdir(d) for d in _cgroup_dirs(version, proc.pid)), timeout=10,
                     what="its cgroup")
        _, err = proc.communicate(request_body, timeout=15)
        if request_body:
            assert proc.returncode == 2, err
            assert b"dice-shim: a request needs 'args' (a list) and 'env' (an object)" in err, err
        else:
            assert proc.returncode == 0 and err == b"", err
        if prepared is not None:
            assert not os.path.exists(f"/proc/{prepared}")  # reaped by the shim before it exited
        if version:
            assert not [d for d in _cgroup_dirs(version, proc.pid) if os.path.exists(d)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_a_job_that_cannot_start_with_the_compiled_shim_fails_with_the_reason(executor, monkeypatch):
    """DICE_LOCAL_SHIM=go without the program: the start is refused (shim_kind) and the job says why."""
    missing = "/nonexistent/agent/bin/dice-shim"
    monkeypatch.setattr(supervisor, "SHIM_PROGRAM", missing)
    executor.run_job(JobSpec(name="broken", command=["true"]))
    status = finished(executor, "broken")
    assert status.state is JobState.FAILED and "could not start" in status.message
    assert "DICE_LOCAL_SHIM=go" in status.message and missing in status.message, status.message


def test_a_compiled_shim_that_cannot_run_fails_the_job_with_the_reason(executor, monkeypatch, tmp_path):
    """A program that is there but cannot be executed (its interpreter is missing): the job says why."""
    program = tmp_path / "dice-shim"
    program.write_text("#!/nonexistent/interpreter\n")
    program.chmod(0o755)
    monkeypatch.setattr(supervisor, "SHIM_PROGRAM", str(program))
    executor.run_job(JobSpec(name="broken", command=["true"]))
    status = finished(executor, "broken")
    assert status.state is JobState.FAILED and "could not start" in status.message
    assert "No such file" in status.message, status.message
    assert STARTER.waiting is None


def test_auto_without_the_compiled_shim_starts_with_the_python_one(executor, monkeypatch):
    """DICE_LOCAL_SHIM=auto where the program is not built: the Python shim's starter starts it."""
    from tests.local.test_jobs_and_cron import _ppid

    monkeypatch.setenv("DICE_LOCAL_SHIM", "auto")
    monkeypatch.setattr(supervisor, "SHIM_PROGRAM", "/nonexistent/agent/bin/dice-shim")
    executor.run_job(JobSpec(name="fallback", command=["sleep", "30"]))
    shim = _job_pid(executor, "fallback")
    assert STARTER.proc is not None and _ppid(shim) == STARTER.proc.pid
    assert STARTER.waiting is None
    executor.cancel_job("fallback")
    assert finished(executor, "fallback").state is JobState.CANCELLED


def test_a_bad_shim_choice_fails_the_job_with_the_reason(executor, monkeypatch):
    monkeypatch.setenv("DICE_LOCAL_SHIM", "rust")
    executor.run_job(JobSpec(name="broken", command=["true"]))
    status = finished(executor, "broken")
    assert status.state is JobState.FAILED and "could not start" in status.message
    assert "DICE_LOCAL_SHIM='rust': choose auto, go or python" in status.message, status.message


@needs_shim
def test_the_console_starts_a_waiting_shim_without_a_session_and_it_makes_its_own():
    """The console starts it with no setsid() between its vfork and exec (that cost the starting
    thread 1-7 ms at times); the shim makes its session first thing: it leads its own session
    and process group (what kill_all and a terminal's signals rely on), not the console's."""
    proc = STARTER._waiting_shim()
    try:
        wait_for(lambda: os.getsid(proc.pid) == proc.pid, timeout=10, what="the waiting shim's own session")
        assert os.getpgid(proc.pid) == proc.pid
        assert os.getsid(proc.pid) != os.getsid(0)
    finally:
        proc.stdin.close()  # no request: it exits
        assert proc.wait(10) == 0
