"""The per-process shim: runs one command, writes its numbered log lines and its exit status.

The command runs in its own process group (pgid = its pid, written to `--pidfile`); stop signals
the shim receives go to that whole group, and when the command exits the rest of its group is
killed.

Run as a script (`python3 shim.py ...`, standard library only, so it starts fast and never imports
the console). It is the session leader the supervisor starts; it outlives the console, so a
restarted console can re-adopt the process and still learn its exit code from `--exitfile`.

    shim.py --log FILE --pidfile FILE --exitfile FILE [--max-bytes N] [--keep N]
            [--mem-mib N] [--user NAME] [--cwd DIR] [--sandbox FILE] [--claim FILE] -- ARGV...
    shim.py --foreground --sandbox FILE [--cwd DIR] -- ARGV...   (a probe or an addon's setup:
            standard streams passed through, the command's exit code returned)

With --sandbox (a JSON spec, see jail.py) the command runs inside bubblewrap as the tenant's uid,
in its own cgroup; the pidfile then names the command as the host sees it (its own session and
group), and the sandbox's init, which the shim kills when the command ends, so whatever the
command left behind ends with it.

With --claim (a path no other start uses) the shim first takes the start: it creates FILE, holding
its pid and start time, only if it does not exist yet (a hard link, so the file appears whole).
A console that took over a job whose launcher stopped before it learnt the shim's pid creates
the same FILE itself: whoever creates it first decides, so "this start never reached its shim"
is a fact (the console's file) rather than a timeout, and a shim that finds the file already
there runs nothing and writes nothing (its job was given up and is started again elsewhere).

Log line format (one per line, tab separated): `<number> <unix time> <stream> <text>`.
Rotation is size based: FILE -> FILE.1 -> ... -> FILE.<keep>; numbering continues across files.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import pwd
import resource
import select
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jail  # beside this file; the shim runs as a script, without the package

PR_SET_PDEATHSIG = 1


def last_number(path: str) -> int:
    """The number of the last line written to the log (0 for a new log)."""
    for candidate in (path, path + ".1"):
        try:
            with open(candidate, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - 65536))
                lines = fh.read().splitlines()
        except OSError:
            continue
        for line in reversed(lines):
            head = line.split(b"\t", 1)[0]
            if head.isdigit():
                return int(head)
    return 0


class LogWriter:
    """Appends numbered, timestamped lines to a file and rotates it by size."""

    def __init__(self, path: str, max_bytes: int, keep: int) -> None:
        self.path, self.max_bytes, self.keep = path, max_bytes, keep
        self.number = last_number(path)
        self.lock = threading.Lock()
        self.fh = open(path, "ab")  # noqa: SIM115 - kept open for the process's life

    def write(self, stream: str, text: str) -> None:
        with self.lock:
            self.number += 1
            line = f"{self.number}\t{time.time():.6f}\t{stream}\t{text}\n".encode("utf-8", "replace")
            self.fh.write(line)
            self.fh.flush()
            if self.fh.tell() >= self.max_bytes:
                self._rotate()

    def _rotate(self) -> None:
        self.fh.close()
        for i in range(self.keep - 1, 0, -1):
            if os.path.exists(f"{self.path}.{i}"):
                os.replace(f"{self.path}.{i}", f"{self.path}.{i + 1}")
        if self.keep > 0:
            os.replace(self.path, f"{self.path}.1")
        else:
            os.unlink(self.path)
        self.fh = open(self.path, "ab")  # noqa: SIM115


def take_masker():
    """The masker of the secret values named in DICE_MASK (a JSON list the supervisor sets),
    removed from the environment first so the command never sees it. The same masking as a
    pipeline step's (agent/masking.py: the value and its common encodings, split lines)."""
    raw = os.environ.pop("DICE_MASK", "")
    os.environ.pop("DICE_MASK_FORMS", None)  # for the compiled shim: this one computes them
    if not raw:
        return None
    try:
        values = [str(v) for v in json.loads(raw) if v]
    except (ValueError, TypeError):
        return None
    if not values:
        return None
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from agent.masking import Masker

    return Masker(values)


def child_setup(mem_mib: int, user: str) -> None:
    """Runs in the child between fork and exec: memory limit, user, die with the shim."""
    os.setpgid(0, 0)  # the command and what it forks form one group the shim can signal
    if mem_mib > 0:
        limit = mem_mib * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if user:
        entry = pwd.getpwnam(user)
        os.setgroups([])
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
    # After the user change: a credential change clears the parent-death signal.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the shim died before prctl took effect
        os._exit(137)


class Prepared:
    """The command's process, forked and moved into its sandbox's cgroup before the request is
    known: made by the process starter's waiting child (spawner.py), which becomes this shim.

    Moving a process into a v1 cgroup waits for the kernel (each hierarchy's move, an RCU grace
    period: 13 ms median per step start on this machine at load 3, bench/bench_step_start.py),
    and a start did it between the request and bubblewrap. Here it is done while the waiting
    child waits. The child holds nothing but what a child forked at the request would (the
    waiting child has not read a request yet; the server it comes from never does): its standard
    streams' pipes and bubblewrap's info pipe, root, in the cgroup without limits. It waits for
    one message, the command (bubblewrap's argv and environment, the sandbox spec and which
    limits the cgroup got), and does then exactly what start()'s child does (jail.child_setup,
    without the move); the end of the message pipe without a message: it exits. The limits are
    written by the shim before the message is sent, so no tenant code runs without them."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.pid = 0
        self.cgroup = jail.Cgroup(version, f"dice-{os.getpid()}")  # the shim's pid: as Sandboxed names it
        self.cgroup.make()
        self.out_r, out_w = os.pipe()
        self.err_r, err_w = os.pipe()
        self.fail_r, fail_w = os.pipe()
        self.info_r, self.info_w = os.pipe()
        go_r, self.go_w = os.pipe()
        null = os.open(os.devnull, os.O_RDWR)
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the command's process-to-be: nothing here may return to the caller
            try:
                keep = {null, out_w, err_w, fail_w, self.info_w, go_r}
                for fd in (0, 1, 2):  # not the starter's request and answer pipes
                    os.dup2(null, fd)
                low = 3
                for fd in sorted(keep):
                    os.closerange(low, fd)
                    low = fd + 1
                os.closerange(low, 1 << 20)
                ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                if os.getppid() != parent:
                    os._exit(1)
                failure = ""
                try:
                    self.cgroup.join()  # what this is for
                except OSError as exc:
                    failure = f"cannot join the sandbox's cgroup: {exc}"
                message = b""
                while True:
                    chunk = os.read(go_r, 65536)
                    if not chunk:
                        break
                    message += chunk
                os.close(go_r)
                if not message:
                    os._exit(0)  # not needed (no sandbox, or the starter ended)
                if failure:
                    raise OSError(failure)
                order = json.loads(message)
                _take_scheduling(*order["scheduling"])
                self.cgroup.controllers = set(order["controllers"])
                _exec_child(null, out_w, err_w, fail_w, order["spec"], self.cgroup, self.info_w,
                            order["argv"], order["env"])
            except BaseException as exc:  # whatever it was, the shim must hear it
                with contextlib.suppress(BaseException):
                    os.write(fail_w, str(exc).encode("utf-8", "replace") or exc.__class__.__name__.encode())
            finally:
                os._exit(127)
        self.pid = pid
        for fd in (out_w, err_w, fail_w, null, go_r):
            os.close(fd)
        os.close(self.info_w)  # its number stays the child's: bubblewrap's --info-fd

    def fds(self) -> set[int]:
        return {self.out_r, self.err_r, self.fail_r, self.info_r, self.go_w}

    def discard(self) -> None:
        """Not used (no sandbox, another cgroup version, the start given up): let the child go
        (the end of its message pipe) and remove its cgroup."""
        if not self.pid:
            return
        for fd in (self.go_w, self.out_r, self.err_r, self.fail_r, self.info_r):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        self.pid = 0
        self.cgroup.remove()


class Sandboxed:
    """The shim's side of a sandbox: its cgroup, bubblewrap's info pipe, the command's pid.
    With `prepared` (a Prepared of the same cgroup version) its cgroup and pipes are the
    prepared process's, and that process becomes the command."""

    def __init__(self, spec_path: str, prepared: Prepared | None = None) -> None:
        with open(spec_path) as fh:
            self.spec = json.load(fh)
        self.cgroup: jail.Cgroup | None = None
        self.prepared: Prepared | None = None
        limits = self.spec.get("limits") or {}
        version = self.spec.get("cgroup") or ""
        if version and os.geteuid() == 0:
            use = prepared is not None and prepared.pid and prepared.version == version
            cgroup = prepared.cgroup if use else jail.Cgroup(version, f"dice-{os.getpid()}")
            try:
                cgroup.create(int(limits.get("mem_mib") or 0), float(limits.get("cpu") or 0),
                              int(limits.get("pids") or 0))
                self.cgroup = cgroup
                self.prepared = prepared if use else None
            except OSError:  # no cgroup here after all: rlimits instead
                if not use:
                    cgroup.remove()
        if self.prepared is not None:
            self.info_r, self.info_w = self.prepared.info_r, self.prepared.info_w  # the child's number
        else:
            self.info_r, self.info_w = os.pipe()
        self.init_pid = 0

    def popen(self, command: list[str], cwd: str | None, **kwargs) -> subprocess.Popen:
        argv = jail.bwrap_argv(self.spec, command, cwd, self.info_w)
        env = jail.sandbox_env(self.spec, dict(os.environ))
        try:
            return subprocess.Popen(argv, cwd="/", env=env, pass_fds=(self.info_w,),
                                    preexec_fn=lambda: jail.child_setup(self.spec, self.cgroup), **kwargs)
        finally:
            os.close(self.info_w)

    def exec_argv(self, command: list[str], cwd: str | None) -> tuple[list[str], dict[str, str]]:
        """bubblewrap's command line and environment for `command` (see start())."""
        return jail.bwrap_argv(self.spec, command, cwd, self.info_w), jail.sandbox_env(self.spec, dict(os.environ))

    def started(self) -> int | None:
        """Wait for bubblewrap to report its init, then for the command; the command's host pid
        (None if it failed)."""
        return jail.command_pid(self.init_pid) if self.read_init() else None

    def read_init(self) -> int:
        """Wait for bubblewrap to report its init (pid 1 inside): its host pid, 0 if it failed."""
        raw, info = b"", None
        while info is None:
            chunk = os.read(self.info_r, 4096)
            if not chunk:
                break
            raw += chunk
            with contextlib.suppress(ValueError):
                info = json.loads(raw)
        os.close(self.info_r)
        try:
            self.init_pid = int(info["child-pid"])
        except (KeyError, TypeError, ValueError):
            return 0
        return self.init_pid

    def end(self) -> None:
        if self.init_pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.init_pid, signal.SIGKILL)  # the pid namespace and all in it
        if self.cgroup is not None:
            self.cgroup.remove()


def exit_status(rc: int, sandboxed: bool) -> tuple[int | None, int | None]:
    """(code, signal) of the command. bubblewrap reports a command killed by signal N as exit
    128+N, which is read back as that signal."""
    if rc < 0:
        return None, -rc
    if sandboxed and 128 < rc < 128 + 65:
        return None, rc - 128
    return rc, None


def foreground(args, command: list[str]) -> int:
    box = Sandboxed(args.sandbox)
    try:
        child = box.popen(command, args.cwd)  # standard streams are the caller's (an addon's setup SQL)
    except OSError as exc:
        print(f"cannot start {command[0] if command else '(nothing)'}: {exc}", file=sys.stderr)
        return 127
    box.started()
    rc = child.wait()
    box.end()
    code, sig = exit_status(rc, True)
    return code if code is not None else 128 + sig


def proc_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat): with the
    pid, what tells this process from a later one given the same pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def claim(path: str) -> bool:
    """Take this start: create `path` (holding this process's pid and start time) unless it
    exists. The file is written aside and hard-linked into place, so whoever sees it sees it
    whole, and the link fails if the console (or anything) created the path first. False: the
    start was given up before this shim took it; it must run nothing."""
    pid = os.getpid()
    tmp = f"{path}.{pid}"
    with open(tmp, "w") as fh:
        json.dump({"shim": pid, "start_time": proc_start_time(pid)}, fh)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    return True


def write_json(path: str, data: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


MEBI = 1024 * 1024
OPTIONS = {"--log": str, "--pidfile": str, "--exitfile": str, "--sandbox": str, "--max-bytes": int, "--keep": int,
           "--mem-mib": int, "--user": str, "--cwd": str, "--claim": str}
USAGE = ("usage: shim.py --log FILE --pidfile FILE --exitfile FILE [--max-bytes N] [--keep N] [--mem-mib N] "
         "[--user NAME] [--cwd DIR] [--sandbox FILE] [--claim FILE] -- ARGV...\n"
         "       shim.py --foreground --sandbox FILE [--cwd DIR] -- ARGV...")


class Args:
    def __init__(self) -> None:
        self.log = self.pidfile = self.exitfile = self.cwd = None
        self.sandbox, self.user, self.claim, self.foreground = "", "", "", False
        self.max_bytes, self.keep, self.mem_mib = 10 * MEBI, 3, 0
        self.command: list[str] = []


def _usage(message: str) -> None:
    sys.stderr.write(f"{USAGE}\nshim.py: error: {message}\n")
    raise SystemExit(2)


def parse(argv: list[str]) -> Args:
    """The command line, parsed by hand: every step starts a shim, and argparse's parser cost each
    start over a millisecond and hundreds of page faults in a freshly forked child. The command
    is whatever follows `--` (or the first argument that is not an option)."""
    args, i = Args(), 0
    while i < len(argv):
        item = argv[i]
        if item == "--":
            args.command = list(argv[i + 1:])
            break
        if item == "--foreground":
            args.foreground = True
            i += 1
            continue
        name, eq, value = item.partition("=")
        if name in OPTIONS:
            if not eq:
                if i + 1 >= len(argv):
                    _usage(f"argument {name}: expected one argument")
                i += 1
                value = argv[i]
            try:
                setattr(args, name[2:].replace("-", "_"), OPTIONS[name](value))
            except ValueError:
                _usage(f"argument {name}: invalid {OPTIONS[name].__name__} value: {value!r}")
            i += 1
            continue
        if item.startswith("-"):
            _usage(f"unrecognized arguments: {item}")
        args.command = list(argv[i:])
        break
    return args


def _scheduling() -> list[int]:
    """This process's CPU scheduling policy and nice value: what its command inherits (a fork
    would; the prepared process was forked before the shim took the request's priority)."""
    return [os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)]


def _take_scheduling(policy: int, nice: int) -> None:
    os.setpriority(os.PRIO_PROCESS, 0, nice)
    if policy != os.sched_getscheduler(0):
        os.sched_setscheduler(0, policy, os.sched_param(0))


# Not only those this interpreter ignores (SIGPIPE, SIGXFSZ, as Popen's restore_signals): a console
# started in the background (`cmd &` in a script) has SIGINT and SIGQUIT ignored, an ignored signal
# stays ignored through exec, and every step and service would ignore them (a service that stops on
# SIGINT would not). Handled ones are reset by exec anyway.
DEFAULT_IN_COMMAND = tuple(sorted(signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}))


def _exec_child(null: int, out_w: int, err_w: int, fail_w: int, spec: dict | None, cgroup, info_w: int,
                argv: list[str], env: dict[str, str], args: Args | None = None) -> None:
    """In the command's process: its standard streams, then (sandboxed, `spec`) jail's setup and
    exec of bubblewrap, or (not, `args`) the directory, limits and user, and exec of argv."""
    os.dup2(null, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    for sig in DEFAULT_IN_COMMAND:  # every signal at its default in the command, as in a container
        signal.signal(sig, signal.SIG_DFL)
    keep = {fail_w}
    if spec is not None:
        os.chdir("/")
        jail.child_setup(spec, cgroup)
        os.set_inheritable(info_w, True)
        keep.add(info_w)
    else:
        if args.cwd:
            os.chdir(args.cwd)
        child_setup(args.mem_mib, args.user)
    low = 3
    for fd in sorted(keep):  # nothing of the shim's but the standard streams (and bwrap's info pipe)
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)
    if spec is not None:
        os.execve(argv[0], argv, env)
    os.execvpe(argv[0], argv, env)


def _started(pid: int, fail_r: int, out_r: int, err_r: int) -> tuple[int, int, int]:
    """Wait until the command's process exec'd (its close-on-exec failure pipe ends) or failed."""
    failure = b""
    while True:
        chunk = os.read(fail_r, 4096)  # the end of the file: the command was exec'd
        if not chunk:
            break
        failure += chunk
    os.close(fail_r)
    if failure:
        os.waitpid(pid, 0)
        os.close(out_r)
        os.close(err_r)
        raise OSError(failure.decode("utf-8", "replace"))
    return pid, out_r, err_r


def start(command: list[str], args: Args, box: Sandboxed | None) -> tuple[int, int, int]:
    """Fork the command (in bubblewrap when `box`), /dev/null for its stdin and a pipe each for
    stdout and stderr: (pid, stdout read end, stderr read end). One plain fork of this small
    process: subprocess.Popen with a preexec function, its pipes and two pump threads cost each
    start ~9 ms of CPU and over a thousand page faults more (bench/bench_step_start.py --profile).
    A child that cannot start (setup or exec) says why on a close-on-exec pipe: raised as OSError.
    With a prepared process (box.prepared) there is no fork: that process is told the command."""
    if box is not None and box.prepared is not None:
        pre, box.prepared = box.prepared, None
        pid, pre.pid = pre.pid, 0  # the command's from here: never discarded
        argv, env = box.exec_argv(command, args.cwd)
        order = json.dumps({"argv": argv, "env": env, "spec": box.spec, "controllers": sorted(box.cgroup.controllers),
                            "scheduling": _scheduling()}).encode()
        try:
            view = memoryview(order)
            while view:
                view = view[os.write(pre.go_w, view):]
        except OSError as exc:  # it died before its order (killed from outside)
            for fd in (pre.fail_r, pre.out_r, pre.err_r):
                os.close(fd)
            os.waitpid(pid, 0)
            raise OSError(f"the prepared process ended: {exc}") from None
        finally:
            os.close(pre.go_w)
        return _started(pid, pre.fail_r, pre.out_r, pre.err_r)
    out_r, out_w = os.pipe()  # os.pipe(): close-on-exec; the dup2s below make stdout/stderr inheritable
    err_r, err_w = os.pipe()
    fail_r, fail_w = os.pipe()
    null = os.open(os.devnull, os.O_RDONLY)
    if box is not None:
        argv, env = box.exec_argv(command, args.cwd)
    pid = os.fork()
    if pid == 0:  # the child: nothing here may return to the caller
        try:
            if box is not None:
                _exec_child(null, out_w, err_w, fail_w, box.spec, box.cgroup, box.info_w, argv, env)
            _exec_child(null, out_w, err_w, fail_w, None, None, -1, command, os.environ, args)
        except BaseException as exc:  # whatever it was, the parent must hear it
            with contextlib.suppress(BaseException):
                os.write(fail_w, str(exc).encode("utf-8", "replace") or exc.__class__.__name__.encode())
        finally:
            os._exit(127)
    for fd in (out_w, err_w, fail_w, null):
        os.close(fd)
    if box is not None:
        os.close(box.info_w)
    return _started(pid, fail_r, out_r, err_r)


class Lines:
    """One stream of the command cut into log lines (a line over 65536 bytes in pieces, as
    readline(65536) cut it)."""

    SIZE = 65536

    def __init__(self, log: LogWriter, stream: str, masker=None) -> None:
        self.log, self.stream, self.buf, self.masker = log, stream, b"", masker

    def write(self, piece: bytes) -> None:
        text = piece.decode("utf-8", "replace").rstrip("\r\n")
        self.log.write(self.stream, self.masker.line(text, self.stream) if self.masker is not None else text)

    def feed(self, data: bytes) -> None:
        self.buf += data
        while True:
            cut = self.buf.find(b"\n")
            if cut < 0 or cut + 1 > self.SIZE:
                if len(self.buf) < self.SIZE:
                    return
                cut = self.SIZE - 1
            piece, self.buf = self.buf[:cut + 1], self.buf[cut + 1:]
            self.write(piece)

    def close(self) -> None:
        if self.buf:
            self.write(self.buf)
            self.buf = b""


DRAIN_AFTER_EXIT = 2.0  # seconds the streams are read after the command ended (a grandchild may hold them)


def follow(pid: int, streams: dict[int, Lines], on_exit, watch: jail.CommandWatch | None = None,
           on_found=None) -> int:
    """Log the streams as they come and reap the command, in this one thread: SIGCHLD wakes the
    select (a wakeup pipe), so the end is seen at once even while something it left holds the
    streams open. on_exit() runs when the command has ended (it kills what the command left);
    the streams are then drained for up to DRAIN_AFTER_EXIT seconds. `watch`: the sandboxed
    command's host pid being looked for, between reads (its lines are logged meanwhile);
    on_found() runs once it is settled. The command's wait status."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    previous = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that the wakeup fd hears it
    status = None
    drain_until = None
    try:
        while streams:
            if watch is not None and not watch.done and watch.wait() == 0.0 and watch.look():
                on_found()
            if status is None:
                done, raw = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = raw
                    on_exit()
                    drain_until = time.monotonic() + DRAIN_AFTER_EXIT
            timeout = None if drain_until is None else max(0.0, drain_until - time.monotonic())
            if timeout == 0.0:
                break
            if watch is not None and not watch.done:
                timeout = watch.wait() if timeout is None else min(timeout, watch.wait())
            ready, _, _ = select.select([*streams, wake_r], [], [], timeout)
            for fd in ready:
                if fd == wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 512)
                    continue
                data = os.read(fd, Lines.SIZE)
                if data:
                    streams[fd].feed(data)
                else:
                    streams.pop(fd).close()
                    os.close(fd)
        for fd, lines in streams.items():
            lines.close()
            os.close(fd)
        if watch is not None and not watch.done:
            watch.done = True  # the streams ended before it was seen: the bubblewrap process stands for it
            on_found()
        if status is None:
            _, status = os.waitpid(pid, 0)
            on_exit()
    finally:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.set_wakeup_fd(previous)
        os.close(wake_r)
        os.close(wake_w)
    return status


def main(argv: list[str], prepared: Prepared | None = None) -> int:
    """The shim. `prepared`: the command's process made ahead (by the process starter), used
    if the command is sandboxed in a cgroup of its version, else let go."""
    try:
        return _main(argv, prepared)
    finally:
        if prepared is not None:
            prepared.discard()  # no-op once it became the command


def _main(argv: list[str], prepared: Prepared | None) -> int:
    args = parse(argv)
    command = args.command
    if args.foreground:
        return foreground(args, command)
    if not (args.log and args.pidfile and args.exitfile):
        _usage("--log, --pidfile and --exitfile are required")
    if args.claim and not claim(args.claim):
        return 0  # given up by the console before this shim took it: started again elsewhere
    log = LogWriter(args.log, args.max_bytes, args.keep)
    masker = take_masker()
    box = None
    try:
        if not command:
            raise ValueError("no command")
        box = Sandboxed(args.sandbox, prepared) if args.sandbox else None
        if prepared is not None and (box is None or box.prepared is None):
            prepared.discard()  # before the command: its cgroup's name is the command's, if any
        pid, out_r, err_r = start(command, args, box)
    except (OSError, ValueError) as exc:
        log.write("stderr", f"cannot start {command[0] if command else '(nothing)'}: {exc}")
        write_json(args.exitfile, {"code": 127, "signal": None, "time": time.time(), "error": str(exc)})
        if box is not None:
            box.end()
        return 127
    # The group to signal: the command's own (in a sandbox it leads its own session, and its
    # host pid is known only once bubblewrap has set the sandbox up: looked for while its
    # lines are already being logged, the pidfile written then).
    # bubblewrap's --new-session makes the sandbox's init a session and group leader, and the
    # command is forked into that group: signalled by the command's pid as a group, a stop
    # signal reached nothing and the command was killed after the grace period instead.
    group = command_pid = pid
    watch = jail.CommandWatch(box.init_pid) if box is not None and box.read_init() else None

    def found() -> None:
        nonlocal group, command_pid
        if watch is not None and watch.pid:
            command_pid = watch.pid
            group = jail.process_group(watch.pid) or watch.pid
        # the shim: what a console adopting a job mid-start follows
        record = {"pid": command_pid, "group": group, "shim": os.getpid()}
        if box is not None:
            record["init"] = box.init_pid
        write_json(args.pidfile, record)

    def forward(signum, _frame):
        if watch is not None and not watch.done:
            if not watch.look():  # set up, but its command not started: nothing in it to stop gently
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(box.init_pid, signal.SIGKILL)
                return
            found()
        # To the whole group: `sh -c "python3 app.py"` forks, and the shell would not pass it on.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, forward)
    if watch is None:
        found()

    def ended() -> None:
        # Like a container: when the main process ends, what it left behind in its group ends too.
        for pgid in {pid, group}:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        if box is not None:
            box.end()

    status = follow(pid, {out_r: Lines(log, "stdout", masker), err_r: Lines(log, "stderr", masker)}, ended,
                    watch, found)
    rc = os.waitstatus_to_exitcode(status)
    code, sig = exit_status(rc, box is not None)
    write_json(args.exitfile, {"code": code, "signal": sig, "time": time.time()})
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
