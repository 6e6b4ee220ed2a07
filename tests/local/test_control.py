"""Changes asked of a local root in a process that does not supervise it (a web process while a
worker supervises) are made by the supervisor over its control socket (scheduler/local/control.py):
scale, restart, delete and a job's cancel, with the supervisor's errors passed back."""

from __future__ import annotations

import os
import socket
import stat

import pytest

from scheduler.base import ExecutorError, ExecutorUnavailable, Health, JobSpec, JobState
from scheduler.local import LocalExecutor
from scheduler.local.control import SOCKET
from tests.local.conftest import group_of, pid_alive, wait_for

SPEC = """
version: "2.0"
services:
  web:
    cmd: exec sleep 600
    resources: {cpu: 0.05, mem: 32}
"""


@pytest.fixture
def pair(make_executor, local_root):
    """The supervisor and, as another process's view of the root, an executor that does not lead."""
    leader = make_executor()
    other = LocalExecutor(local_root)
    assert leader.leader and not other.leader
    yield leader, other
    other.close()


def test_scale_restart_and_delete_from_another_process_go_to_the_supervisor(pair, runtime):
    leader, other = pair
    leader.apply(group_of(SPEC, runtime))
    wait_for(lambda: leader.status(runtime).health is Health.HEALTHY, 30, "the service")

    other.scale(runtime, "web", 2)
    assert leader.sup.runtimes[runtime.namespace]["units"]["web"]["replicas"] == 2
    wait_for(lambda: len(leader.pids(runtime)) == 2, 30, "the second replica")
    assert not other.leader  # it asked; it did not take the root over

    before = leader.pids(runtime)["web-0"]["shim"]
    other.restart(runtime, "web")
    wait_for(lambda: leader.pids(runtime).get("web-0", {}).get("shim") not in (None, before), 30, "the restart")

    with pytest.raises(ExecutorError, match="no service 'nope'") as caught:
        other.scale(runtime, "nope", 1)  # the supervisor's own error, passed back
    assert not isinstance(caught.value, ExecutorUnavailable)

    shims = [p["shim"] for p in leader.pids(runtime).values()]
    other.destroy(runtime)
    assert runtime.namespace not in leader.sup.runtimes
    assert not leader.runtime_dir(runtime.namespace).exists()
    assert not any(pid_alive(pid) for pid in shims)


def test_a_job_is_cancelled_through_the_supervisor(pair, tmp_path):
    leader, other = pair
    leader.run_job(JobSpec(name="long", command=["/bin/sh", "-c", "sleep 600"], namespace="pipelines-1",
                           workdir=str(tmp_path / "w")))
    wait_for(lambda: leader.job_status("long", "pipelines-1").state is JobState.RUNNING, 15, "the job")
    other.cancel_job("long", "pipelines-1")
    wait_for(lambda: leader.job_status("long", "pipelines-1").state is JobState.CANCELLED, 15, "the cancel")


def test_without_a_supervisor_answering_the_change_is_refused_clearly(pair, runtime):
    leader, other = pair
    leader._control.close()  # a supervisor that holds the lock but does not answer
    with pytest.raises(ExecutorUnavailable, match="does not answer"):
        other.scale(runtime, "web", 1)


def test_the_socket_is_the_consoles_alone(pair, local_root):
    leader, _ = pair
    path = local_root / SOCKET
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # Another uid (a tenant's) that got a connection anyway (through a link of the socket in a
    # folder it can reach, the socket's mode opened) is not answered.
    reachable = f"/tmp/dice-control-test-{os.getpid()}.sock"
    os.link(path, reachable)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.chmod(reachable, 0o666)
            os.setgid(65534)
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(5)
                sock.connect(reachable)
                sock.sendall(b'{"op": "cancel_job", "name": "x"}\n')
                os.write(write, sock.recv(100) or b"closed")
        except BaseException as exc:
            os.write(write, f"error {exc}".encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    os.unlink(reachable)
    os.chmod(path, 0o600)
    seen = os.read(read, 200)
    # connected, then closed unanswered (before or after its request went out)
    assert seen in (b"closed", b"error [Errno 32] Broken pipe", b"error [Errno 104] Connection reset by peer"), seen


def test_a_process_told_not_to_supervise_never_takes_the_root(make_executor, local_root, runtime, monkeypatch):
    """Production mode's web processes (DICE_LOCAL_SUPERVISE=0): even with no supervisor at that
    moment (a standby worker about to take over), a change does not make the web process the
    supervisor; it is refused clearly, and the worker takes the root when it comes."""
    monkeypatch.setenv("DICE_LOCAL_SUPERVISE", "0")
    web = LocalExecutor(local_root)
    try:
        with pytest.raises(ExecutorUnavailable, match="does not answer"):
            web.scale(runtime, "web", 2)
        assert not web.leader
        monkeypatch.delenv("DICE_LOCAL_SUPERVISE")
        worker = make_executor()
        assert worker.leader
        worker.apply(group_of(SPEC, runtime))
        web.scale(runtime, "web", 2)  # now through the worker
        assert worker.sup.runtimes[runtime.namespace]["units"]["web"]["replicas"] == 2
        with pytest.raises(ExecutorUnavailable, match="DICE_LOCAL_SUPERVISE=0"):
            web.tick()
    finally:
        web.close()
