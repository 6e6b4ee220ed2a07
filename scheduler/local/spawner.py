"""The process starter: a pre-forking server from which every shim of the console is forked, so
the console never forks and a start costs no interpreter.

Run by the console as `python3 -S spawner.py`, with an environment of its own (PATH only) and no
descriptor but its standard streams, standard library only. It imports the shim (shim.py, jail.py)
once; then, in a loop, it forks a *waiting child* and waits until that child has taken one
request, after which it forks the next. The child reads its request from standard input itself,
so the server never sees a request: what one start carried (a service's environment, a tenant's
paths) is never in the memory the next child is forked from. The child answers its own pid on
standard output and becomes the shim of that request: its own session, /dev/null for its
standard streams, every other descriptor closed, the request's environment (nothing of the
server's), its CPU priority, then shim.main() as if `python3 -S shim.py ARGS` had been started,
and it exits with the shim's code (it never returns to the server's loop). Bubblewrap, the
tenant's uid and its cgroup still wrap every sandboxed command: the shim starts them as before.

Where this server runs as root on a machine with cgroups, each waiting child also makes, while it
waits, the process its command will be (shim.Prepared): forked, and moved into the cgroup the
sandbox will be limited by, which is what costs a start most of its wait in the kernel (13 ms
median per start on cgroup v1 at load 3). The request's shim writes the limits and hands it the
command; a request without a sandbox lets it go. A waiting child that finds its request already
there (a burst) forks at the request instead, as that request would otherwise wait. It is forked before the request is read, from
a process that never read one, so it holds nothing of any start.

A burst of 100 step starts costs the console 100 pipe writes; each costs the machine one fork of
this small process (made ahead of the request), not a fork/exec of an interpreter that imports
its modules again (26 ms each on this machine under load, bench/bench_pipeline_dispatch.py).

Protocol: a request is a 4-byte big-endian length and that many bytes of JSON,
{"shim": [shim arguments], "env": {...}, "priority": "" | "idle" | "1".."19"}; the answer is one
JSON line, {"pid": N} or {"error": "..."}. The console writes the next request only after the
answer, so exactly one waiting child reads at a time. At the end of its input (the console
closed the pipe or died) the waiting child exits and tells the server, which exits too; the
shims it started keep running, re-parented to init, as before.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shim  # beside this file, with jail.py: imported once, here, for every child

MAX_REQUEST = 16 * 1024 * 1024
_DEFAULT_SIGNALS = tuple(s for s in (getattr(signal, "SIGPIPE", None), getattr(signal, "SIGXFSZ", None)) if s)


def _reap(_signum=None, _frame=None) -> None:
    """The shims are this server's children until it exits: collect the ended ones."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _read_exactly(fd: int, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            return data
        data += chunk
    return data


def _set_priority(priority: str) -> None:
    """As `chrt --idle 0` or `nice -n N` did in front of the shim: inherited by all it starts."""
    priority = str(priority or "").strip()
    if priority in ("", "0", "normal"):
        return
    if priority == "idle" and hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return
        priority = "19"
    if priority == "idle":
        priority = "19"
    if priority.isdigit() and 1 <= int(priority) <= 19:
        os.nice(int(priority))


def _become(request: dict, prepared: shim.Prepared | None) -> int:
    """In the child, after answering: become the shim of `request` (never returns to the loop)."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    low = 3
    for fd in sorted(prepared.fds() if prepared is not None else ()):  # all but the prepared process's pipes
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX") if os.sysconf("SC_OPEN_MAX") > 0 else 65536)
    os.chdir("/")
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in request["env"].items()})
    _set_priority(request.get("priority", ""))
    sys.argv = [shim.__file__, *request["shim"]]
    return shim.main([str(a) for a in request["shim"]], prepared)


def _prepare() -> shim.Prepared | None:
    """The command's process made ahead (see the module's docstring), where it helps: not when
    a request is waiting already (a burst), which would wait for it, the move still to come."""
    if not CGROUPS or select.select([0], [], [], 0)[0]:
        return None
    try:
        return shim.Prepared(CGROUPS)
    except OSError:  # no cgroup after all (or no fork): the shim forks at the request, as without
        return None


def _child(taken_w: int) -> None:
    """A waiting child: take one request, answer, become its shim; or, at the end of input, exit."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for sig in _DEFAULT_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    os.setsid()  # the shim's session, before the process it prepares: the command's too
    prepared = _prepare()
    code = 1
    try:
        head = _read_exactly(0, 4)
        if len(head) < 4:
            os.close(taken_w)  # without a byte: the input ended, the server exits
            if prepared is not None:
                prepared.discard()
            os._exit(0)
        (size,) = struct.unpack(">I", head)
        body = _read_exactly(0, size) if size <= MAX_REQUEST else b""
        os.write(taken_w, b"1")  # the next waiting child may be forked now
        os.close(taken_w)
        try:
            if len(body) != size:
                raise ValueError(f"a request of {size} bytes (at most {MAX_REQUEST}) was cut short")
            request = json.loads(body)
            if not isinstance(request.get("shim"), list) or not isinstance(request.get("env"), dict):
                raise ValueError("a request needs 'shim' (a list) and 'env' (an object)")
        except (ValueError, TypeError, AttributeError) as exc:
            os.write(1, json.dumps({"error": f"{exc.__class__.__name__}: {exc}"}).encode() + b"\n")
            if prepared is not None:
                prepared.discard()
            os._exit(2)
        os.write(1, json.dumps({"pid": os.getpid()}).encode() + b"\n")
        del head, body
        code = _become(request, prepared)
    except SystemExit as exc:  # the shim's argument errors
        code = exc.code if isinstance(exc.code, int) else 2
    except BaseException:  # whatever happened, never fall back into the server's loop
        code = 1
        if prepared is not None:
            with contextlib.suppress(BaseException):
                prepared.discard()
    finally:
        os._exit(code)


# The cgroup version the sandboxes are limited with here, found once ("" when not root or none).
CGROUPS = ""


def main() -> int:
    global CGROUPS
    os.chdir("/")
    if os.geteuid() == 0:
        with contextlib.suppress(OSError):
            CGROUPS = shim.jail.cgroup_version()
    signal.signal(signal.SIGCHLD, _reap)
    while True:
        taken_r, taken_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(taken_r)
            _child(taken_w)  # never returns
        os.close(taken_w)
        try:
            took = _read_exactly(taken_r, 1)  # blocks until the child has its request (or input ended)
        finally:
            os.close(taken_r)
        _reap()
        if not took:
            return 0


if __name__ == "__main__":
    sys.exit(main())
