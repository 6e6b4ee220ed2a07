"""Entering a tenant's sandbox: cgroup limits, the switch to its uid, and bubblewrap's command line.

Standard library only: the shim (`python3 -S shim.py`, which imports this file from beside itself)
runs it, as root, in the child it forks for the tenant's command. What the sandbox is made of
(the spec) is decided by the console (scheduler/local/sandbox.py); this file only carries it out:

1. a cgroup per sandbox (memory, CPU, process count), made under the shim's own cgroup: v2 where
   the machine has a unified hierarchy with those controllers, v1 where it has those, else
   rlimits (RLIMIT_AS for memory, RLIMIT_NPROC for processes); RLIMIT_NOFILE always;
2. when root: a private mount namespace in which each directory the tenant may see is bind-mounted
   under STAGE, so that bubblewrap, which runs as the tenant's uid, can reach it even though its
   real path crosses directories only root may enter (the console's data directory);
3. the tenant's uid and gid, no supplementary groups, and death with the shim;
4. exec of bubblewrap, which builds a new root from nothing but the listed paths (the system
   read-only, the tenant's own directories writable, a private /tmp and home), in new user, PID,
   IPC, UTS and cgroup namespaces, with no capabilities and no further user namespaces.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import time

STAGE = "/run/dice-sandbox"  # empty on the host; each sandbox mounts its own tmpfs here, privately
CGROUP_ROOT = "/sys/fs/cgroup"
SYSTEM_DIRS = ("/usr", "/etc", "/opt")  # read-only in every sandbox
USR_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")  # merged-/usr links, or directories
PR_SET_PDEATHSIG = 1
CLONE_NEWNS = 0x00020000
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x1000, 0x4000, 0x40000
CPU_PERIOD = 100_000  # microseconds


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _mount(libc, source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def enc(text: str | None) -> bytes | None:
        return text.encode() if text is not None else None

    if libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


# ---- cgroups --------------------------------------------------------------------------------


def cgroup_version() -> str:
    """"v2" when the unified hierarchy at /sys/fs/cgroup gives this process's cgroup's children
    the memory and pids controllers, "v1" when memory, cpu and pids are v1 hierarchies, else ""."""
    try:
        # v2: only where this process's cgroup hands memory and pids down to its children (a
        # delegated subtree); elsewhere its sandboxes could not be limited there.
        with open(f"{CGROUP_ROOT}{_own_cgroup('').rstrip('/')}/cgroup.subtree_control") as fh:
            if {"memory", "pids"} <= set(fh.read().split()):
                return "v2"
    except OSError:
        pass
    if all(os.path.isdir(f"{CGROUP_ROOT}/{c}") for c in ("memory", "pids", "cpu")):
        return "v1"
    return ""


def _own_cgroup(controller: str) -> str:
    """This process's cgroup path in the hierarchy of `controller` ("" for v2)."""
    with open("/proc/self/cgroup") as fh:
        for line in fh:
            _, names, path = line.rstrip("\n").split(":", 2)
            if (controller == "" and names == "") or controller in names.split(","):
                return path
    return "/"


class Cgroup:
    """One sandbox's cgroup(s); created by the shim (root), joined by its child, removed at the end."""

    def __init__(self, version: str, name: str) -> None:
        self.version, self.name = version, name
        self.dirs: list[str] = []
        self.controllers: set[str] = set()
        self.joined = False

    def _dir(self, path: str) -> None:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path)
        if path not in self.dirs:
            self.dirs.append(path)

    def make(self) -> None:
        """Every directory a sandbox's limits may need, with no limit yet (create() sets them):
        what the process starter makes ahead of a request, so that the move of a process into
        it (seconds' worth of milliseconds under load on v1: each hierarchy's move waits for the
        kernel's RCU grace period) happens before the request rather than in its way."""
        if self.version == "v2":
            self._dir(f"{CGROUP_ROOT}{_own_cgroup('').rstrip('/')}/{self.name}")
        elif self.version == "v1":
            for controller in ("memory", "cpu", "pids"):
                self._dir(f"{CGROUP_ROOT}/{controller}{_own_cgroup(controller).rstrip('/')}/{self.name}")

    def create(self, mem_mib: int, cpu: float, pids: int) -> None:
        if self.version == "v2":
            self._create_v2(mem_mib, cpu, pids)
        elif self.version == "v1":
            for controller, settings in (
                ("memory", _v1_memory(mem_mib)),
                ("cpu", {"cpu.cfs_period_us": CPU_PERIOD, "cpu.cfs_quota_us": int(cpu * CPU_PERIOD)} if cpu > 0 else {}),
                ("pids", {"pids.max": pids} if pids > 0 else {}),
            ):
                if not settings:
                    continue
                path = f"{CGROUP_ROOT}/{controller}{_own_cgroup(controller).rstrip('/')}/{self.name}"
                self._dir(path)
                for key, value in settings.items():
                    if os.path.exists(f"{path}/{key}"):
                        _write(f"{path}/{key}", str(value))
                self.controllers.add(controller)

    def _create_v2(self, mem_mib: int, cpu: float, pids: int) -> None:
        parent = f"{CGROUP_ROOT}{_own_cgroup('').rstrip('/')}"
        # A cgroup with processes cannot give controllers to its children (no internal
        # processes); the shim's cgroup is the console's, so delegate from a `dice` child of it
        # only when the parent already enables them (systemd's Delegate=yes, a container's root).
        with open(f"{parent}/cgroup.subtree_control") as fh:
            enabled = set(fh.read().split())
        path = f"{parent}/{self.name}"
        self._dir(path)
        if "memory" in enabled and mem_mib > 0:
            _write(f"{path}/memory.max", str(mem_mib * 1024 * 1024))
            with contextlib.suppress(OSError):
                _write(f"{path}/memory.swap.max", "0")
            self.controllers.add("memory")
        if "cpu" in enabled and cpu > 0:
            _write(f"{path}/cpu.max", f"{int(cpu * CPU_PERIOD)} {CPU_PERIOD}")
            self.controllers.add("cpu")
        if "pids" in enabled and pids > 0:
            _write(f"{path}/pids.max", str(pids))
            self.controllers.add("pids")

    def join(self) -> None:
        """In the child: move this process (and so all it starts) into the cgroup(s). Once: a
        process moved ahead of its request (make()) is not moved again."""
        if self.joined:
            return
        for path in self.dirs:
            _write(f"{path}/cgroup.procs", str(os.getpid()))
        self.joined = True

    def remove(self) -> None:
        """After the sandbox ended: rmdir. A cgroup whose last processes are still exiting
        refuses; the console's sweep (sweep_cgroups) removes it later, so the shim does not wait:
        its exit is what tells the console the command ended."""
        for path in self.dirs:
            with contextlib.suppress(OSError):
                os.rmdir(path)


def sweep_cgroups(version: str) -> int:
    """Remove the empty cgroups of shims that were killed before they could (their pid, in the
    name, is gone); a cgroup still holding processes refuses rmdir and stays. Returns how many went."""
    if version == "v2":
        parents = [f"{CGROUP_ROOT}{_own_cgroup('').rstrip('/')}"]
    elif version == "v1":
        parents = [f"{CGROUP_ROOT}/{c}{_own_cgroup(c).rstrip('/')}" for c in ("memory", "cpu", "pids")]
    else:
        return 0
    removed = 0
    for parent in parents:
        try:
            names = [n for n in os.listdir(parent) if n.startswith("dice-") and n[5:].isdigit()]
        except OSError:
            continue
        for name in names:
            if os.path.exists(f"/proc/{name[5:]}"):
                continue
            with contextlib.suppress(OSError):
                os.rmdir(f"{parent}/{name}")
                removed += 1
    return removed


def _v1_memory(mem_mib: int) -> dict:
    if mem_mib <= 0:
        return {}
    limit = mem_mib * 1024 * 1024
    # memsw (memory + swap) must be set after memory and never below it; absent without swap accounting
    return {"memory.limit_in_bytes": limit, "memory.memsw.limit_in_bytes": limit, "memory.swappiness": 0}


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


# ---- in the child, before exec ----------------------------------------------------------------


def child_setup(spec: dict, cgroup: Cgroup | None) -> None:
    """Between fork and exec, as root: own process group, cgroup, rlimits, staged binds, the
    tenant's uid, death with the shim."""
    libc = _libc()
    os.setpgid(0, 0)
    limits = spec.get("limits") or {}
    controllers = cgroup.controllers if cgroup is not None else set()
    if cgroup is not None:
        cgroup.join()
    mem = int(limits.get("mem_mib") or 0)
    if mem > 0 and "memory" not in controllers:
        resource.setrlimit(resource.RLIMIT_AS, (mem * 1024 * 1024,) * 2)
    if limits.get("nofile"):
        resource.setrlimit(resource.RLIMIT_NOFILE, (int(limits["nofile"]),) * 2)
    if limits.get("nproc") and "pids" not in controllers:
        resource.setrlimit(resource.RLIMIT_NPROC, (int(limits["nproc"]),) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if os.geteuid() == 0:
        _stage(libc, all_binds(spec))
    uid, gid = int(spec["uid"]), int(spec["gid"])
    if os.geteuid() == 0:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    # After the user change: a credential change clears the parent-death signal.
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the shim died before prctl took effect
        os._exit(137)


def _stage(libc, binds: list) -> None:
    """A private mount namespace where bind i is reachable at STAGE/i by any user."""
    if libc.unshare(CLONE_NEWNS) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNS): {os.strerror(err)}")
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
    _mount(libc, "tmpfs", STAGE, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k")
    for index, (source, _dest, _mode) in enumerate(binds):
        point = f"{STAGE}/{index}"
        if os.path.isdir(source):
            os.mkdir(point)
        else:
            os.close(os.open(point, os.O_WRONLY | os.O_CREAT, 0o644))
        _mount(libc, source, point, None, MS_BIND | MS_REC)


# ---- bubblewrap's command line --------------------------------------------------------------


def all_binds(spec: dict) -> list:
    """(source, destination, "rw"|"ro") in mount order: the tenant's passwd and group over the
    system's /etc, then its own paths."""
    own = [(spec[name], f"/etc/{name}", "ro") for name in ("passwd", "group") if spec.get(name)]
    return [*own, *(spec.get("binds") or [])]


def bwrap_argv(spec: dict, argv: list[str], cwd: str | None, info_fd: int | None) -> list[str]:
    staged = os.geteuid() == 0
    out = [spec.get("bwrap") or "bwrap", "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
           "--unshare-cgroup-try", "--disable-userns", "--die-with-parent", "--new-session",
           "--hostname", spec.get("hostname") or "sandbox"]
    for path in SYSTEM_DIRS:
        if os.path.isdir(path):
            out += ["--ro-bind", path, path]
    for path in USR_LINKS:
        if os.path.islink(path):
            out += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            out += ["--ro-bind", path, path]
    out += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/dev/shm"]
    size = str(int(spec.get("tmp_mib") or 1024) * 1024 * 1024)
    home = spec.get("home") or "/home/sandbox"
    out += ["--size", size, "--tmpfs", "/tmp", "--size", size, "--tmpfs", "/var/tmp", "--size", size, "--tmpfs", home]
    for index, (source, dest, mode) in enumerate(all_binds(spec)):
        out += ["--bind" if mode == "rw" else "--ro-bind", f"{STAGE}/{index}" if staged else source, dest]
    for path in spec.get("dirs") or []:
        out += ["--dir", path]
    # The root itself (and the parents bwrap made for the binds) read-only: only binds and tmpfs take writes.
    out += ["--remount-ro", "/"]
    if cwd:
        out += ["--chdir", cwd]
    if info_fd is not None:
        out += ["--info-fd", str(info_fd)]
    return [*out, "--", *argv]


def sandbox_env(spec: dict, env: dict[str, str]) -> dict[str, str]:
    """The environment inside: the console's home and temporary directory do not exist there."""
    home = spec.get("home") or "/home/sandbox"
    user = spec.get("user") or "sandbox"
    return {**env, "HOME": home, "TMPDIR": "/tmp", "USER": user, "LOGNAME": user}


class CommandWatch:
    """Finds the host pid of the sandboxed command: the child of the sandbox's init (pid 1
    inside), which appears once bubblewrap has set the sandbox up. The kernel gives no event for
    it, so it is looked for at growing intervals (FIRST, doubling, at most EVERY): a wide stage
    starts a hundred sandboxes at once on two cores, and a hundred shims looking every 0.5 ms
    kept the cores busy with looking while the sandboxes waited to be set up. Nothing waits for
    it but the pid file (a stop signal looks at once, `look()`): bubblewrap takes some
    milliseconds to set up even on an idle machine, so the first look is after 4 ms, and under
    load at most every 50 ms (with 20 ms, the looks were ~10% of the compiled shim's CPU in a
    wide stage)."""

    FIRST = 0.004
    EVERY = 0.05

    def __init__(self, init_pid: int, timeout: float = 5.0) -> None:
        self.init_pid = init_pid
        self.deadline = time.monotonic() + timeout
        self.interval = self.FIRST
        self.due = time.monotonic() + self.FIRST  # bubblewrap takes some milliseconds to set it up
        self.done = False
        self.pid: int | None = None

    def look(self) -> bool:
        """Look once; True when it is settled (self.pid: the command, or None when init is gone,
        a zombie, or the time is up)."""
        if self.done:
            return True
        try:
            with open(f"/proc/{self.init_pid}/task/{self.init_pid}/children") as fh:
                kids = fh.read().split()
            if not kids:
                with open(f"/proc/{self.init_pid}/stat") as fh:
                    stat = fh.read()
                if stat[stat.rfind(")") + 2:][:1] in ("Z", "X"):
                    self.done = True  # a command that already ended
        except OSError:
            self.done = True  # init is gone: so is the command
        else:
            if kids:
                self.pid, self.done = int(kids[0]), True
        now = time.monotonic()
        if not self.done and now >= self.deadline:
            self.done = True
        self.due = now + self.interval
        self.interval = min(self.interval * 2, self.EVERY)
        return self.done

    def wait(self) -> float | None:
        """Seconds until the next look is due (None once settled)."""
        return None if self.done else max(0.0, self.due - time.monotonic())


def process_group(pid: int) -> int | None:
    """The process group of `pid` (field 5 of /proc/PID/stat), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
        return int(stat[stat.rfind(")") + 2:].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def command_pid(init_pid: int, timeout: float = 5.0) -> int | None:
    """The host pid of the sandboxed command, waiting for it (see CommandWatch). None when init
    is gone or a zombie (a command that already ended)."""
    watch = CommandWatch(init_pid, timeout)
    while not watch.look():
        time.sleep(watch.wait() or 0)
    return watch.pid
