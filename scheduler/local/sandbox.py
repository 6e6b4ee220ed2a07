"""The local cluster's sandbox: what this machine can isolate, tenant uids, and each process's spec.

Every tenant process the local engine starts (service replicas, addons, cron runs, jobs and
pipeline steps with their agent, exec health checks, addon setup) runs through the shim inside
bubblewrap (jail.py carries a spec out):

- its own uid, one per tenant (an organization, or a namespace when no tenant is given), from a
  range the console owns (DICE_LOCAL_UID_BASE, default 200000, DICE_LOCAL_UID_COUNT, 50000),
  never the console's and never root; files it writes belong to that uid;
- its own root filesystem: /usr, /etc (with a passwd and group of its own naming only root,
  nobody and itself) and /opt read-only; its own directories (work directory, placed files,
  caches, addon data) writable; private /tmp, /var/tmp, /dev/shm and home (tmpfs, sized); the
  console's data directory, other runtimes' state and logs, other tenants' directories and the
  rest of the host are not mounted at all;
- its own PID, IPC, UTS and cgroup namespaces, no capabilities, no further user namespaces;
- limits: memory, CPU and process count in a cgroup of its own (v2, or v1 controllers, under the
  console's cgroup), else RLIMIT_AS and RLIMIT_NPROC; RLIMIT_NOFILE; a size on each tmpfs;
- the network is shared (see isolation_report()).

Why bubblewrap rather than util-linux unshare/nsenter: bubblewrap builds a root from an explicit
list of paths (an allow list: a directory nobody thought of is simply absent), where unshare
leaves the host's mounts in place to be hidden one by one (a deny list); it gives the sandbox a
reaping init, drops every capability, sets no_new_privs, forbids nested user namespaces and kills
the sandbox with its parent, all in one exec of a small C program (about 2 ms). It is Debian's
`bubblewrap` package, the sandbox of Flatpak.

A console that does not run as root still gets the sandbox through an unprivileged user namespace,
but every tenant runs as the console's own uid and without cgroups (rlimits only): the report says
so. Switched off by DICE_LOCAL_SANDBOX=0, and off by itself when the machine cannot do it (no
bwrap, namespaces refused): then isolation_report() says "none" and the executor serves one
organization only unless the cluster's `allow_shared_tenancy` is set.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from scheduler.local import jail, state

SHIM = str(Path(__file__).with_name("shim.py"))
DEFAULT_UID_BASE = 200_000
DEFAULT_UID_COUNT = 50_000
DEFAULT_PIDS = 512  # processes (threads count too) per sandbox
DEFAULT_NOFILE = 4096
DEFAULT_TMP_MIB = 1024  # each of /tmp, /var/tmp and home (tmpfs pages count as the sandbox's memory)
HOME = "/home/dice"
# What every sandbox sees anyway (read-only): a program under these needs no bind of its own.
SYSTEM_PREFIXES = tuple(f"{d}/" for d in (*jail.SYSTEM_DIRS, *jail.USR_LINKS))


@dataclass(frozen=True)
class Isolation:
    """What the local cluster isolates on this machine."""

    enabled: bool
    reason: str  # why not, when not enabled
    bwrap: str = ""
    cgroups: str = ""  # "v2", "v1" or "" (rlimits)
    uid_base: int = DEFAULT_UID_BASE
    uid_count: int = DEFAULT_UID_COUNT
    own_uids: bool = True  # a uid per tenant (the console runs as root); else the console's uid

    def report(self) -> dict:
        """As a capability report shows it (plain data)."""
        if not self.enabled:
            return {
                "isolation": "none",
                "reason": self.reason,
                "detail": "tenant processes run as the console's user and see its files and processes; "
                          "the cluster serves workspaces of one organization unless a staff user allows more",
            }
        limits = (f"memory, CPU and process count in a cgroup ({self.cgroups})" if self.cgroups
                  else "memory (RLIMIT_AS) and process count (RLIMIT_NPROC, per uid)")
        return {
            "isolation": "sandbox",
            "tool": f"bubblewrap ({self.bwrap})",
            "user": (f"a uid per organization from {self.uid_base}-{self.uid_base + self.uid_count - 1}"
                     if self.own_uids else
                     "the console's own uid (it does not run as root): tenants are kept apart by their "
                     "namespaces only, and what they write belongs to the console's user"),
            "filesystem": "own root: system read-only, own directories writable, private /tmp; "
                          "the console's data directory and other tenants' directories are absent",
            "processes": "own PID, IPC, UTS and cgroup namespaces; no capabilities, no nested user namespaces",
            "limits": f"{limits}; open files (RLIMIT_NOFILE); /tmp, /var/tmp and home sized tmpfs; "
                      "no disk quota on work directories",
            "network": "shared with the host: services listen on 127.0.0.1 ports and reach addons and "
                       "each other over loopback; any tenant can connect to any loopback port "
                       "(addons require their passwords)",
        }


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw.isdigit() else default


@functools.cache
def isolation() -> Isolation:
    """Detected once per process: switched on, root, bwrap installed, and a trial sandbox works."""
    base, count = _env_int("DICE_LOCAL_UID_BASE", DEFAULT_UID_BASE), _env_int("DICE_LOCAL_UID_COUNT", DEFAULT_UID_COUNT)
    if os.environ.get("DICE_LOCAL_SANDBOX", "1").strip().lower() in ("0", "false", "no", "off"):
        return Isolation(False, "switched off (DICE_LOCAL_SANDBOX=0)", uid_base=base, uid_count=count)
    bwrap = shutil.which("bwrap") or ""
    if not bwrap:
        return Isolation(False, "bubblewrap is not installed (apt-get install bubblewrap)", uid_base=base, uid_count=count)
    root = os.geteuid() == 0
    # Not root: bubblewrap in an unprivileged user namespace, as the console's uid, without cgroups.
    cgroups = jail.cgroup_version() if root else ""
    isol = Isolation(True, "", bwrap=bwrap, cgroups=cgroups, uid_base=base, uid_count=count, own_uids=root)
    failure = _trial(isol)
    if failure:
        hint = "" if root else " (unprivileged user namespaces refused? run the console as root)"
        return Isolation(False, f"a trial sandbox failed{hint}: {failure}", bwrap=bwrap, uid_base=base,
                         uid_count=count)
    return isol


def _trial(isol: Isolation) -> str:
    """Run `true` in a sandbox as the first uid of the range; the error text, or ""."""
    uid = isol.uid_base + isol.uid_count - 1 if isol.own_uids else os.geteuid()
    spec = {"bwrap": isol.bwrap, "uid": uid, "gid": uid if isol.own_uids else os.getegid(), "limits": {}, "cgroup": ""}
    fd, path = tempfile.mkstemp(prefix="dice-sandbox-trial-", suffix=".json")
    os.close(fd)
    try:
        if isol.own_uids:
            os.makedirs(jail.STAGE, exist_ok=True)
        with open(path, "w") as fh:
            json.dump(spec, fh)
        done = subprocess.run([sys.executable, "-S", SHIM, "--foreground", "--sandbox", path, "--", "/bin/true"],
                              capture_output=True, timeout=30, cwd="/")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    if done.returncode != 0:
        return (done.stderr or done.stdout).decode(errors="replace").strip()[-300:] or f"exit {done.returncode}"
    return ""


def isolation_report() -> dict:
    """The sandbox as the `local` cluster's capability report shows it."""
    return isolation().report()


class Sandboxes:
    """One root's sandbox bookkeeping: tenant uids (uids.json) and the passwd files they see."""

    def __init__(self, root: Path, isol: Isolation | None = None) -> None:
        self.dir = root / "sandbox"
        self.isolation = isol or isolation()
        self._cache: dict[str, int] = {}
        if self.isolation.enabled:
            self.dir.mkdir(parents=True, exist_ok=True)
            if self.isolation.own_uids:
                os.chmod(self.dir, 0o755)  # the shim reads it as root; bwrap binds passwd files from it
                os.makedirs(jail.STAGE, exist_ok=True)

    @property
    def enabled(self) -> bool:
        return self.isolation.enabled

    def uid(self, tenant: str) -> int:
        """The tenant's uid, allocated once (the first free one of the range) and kept."""
        found = self._cache.get(tenant)
        if found is not None:
            return found
        if not self.isolation.own_uids:  # not root: every tenant runs as the console's uid
            self._cache[tenant] = os.geteuid()
            self._identity_files(os.geteuid())
            return os.geteuid()
        book_path = self.dir / "uids.json"
        with open(self.dir / "uids.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                book = json.loads(book_path.read_text())
            except (OSError, ValueError):
                book = {}
            if tenant not in book:
                used = set(book.values())
                base, count = self.isolation.uid_base, self.isolation.uid_count
                for uid in range(base, base + count - 1):  # the last one is the trial's
                    if uid not in used and not _host_has(uid):
                        book[tenant] = uid
                        break
                else:
                    raise OSError(f"no free uid left in {base}-{base + count - 1} (DICE_LOCAL_UID_BASE/COUNT)")
                state.write_text(book_path, json.dumps(book, sort_keys=True))
        self._cache[tenant] = book[tenant]
        self._identity_files(book[tenant])
        return book[tenant]

    def _identity_files(self, uid: int) -> None:
        name = user_name(uid)
        gid = uid if self.isolation.own_uids else os.getegid()
        files = {
            f"passwd-{uid}": f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
                             f"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
                             f"{name}:x:{uid}:{gid}:dice tenant:{HOME}:/bin/sh\n",
            f"group-{uid}": f"root:x:0:\nnogroup:x:65534:\n{name}:x:{gid}:\n",
        }
        for fname, text in files.items():
            path = self.dir / fname
            if not path.exists() or path.read_text() != text:
                state.write_text(path, text, 0o644)  # jobs of one tenant start together: no shared temp name

    def spec(self, tenant: str, *, binds: list[tuple[str, str, str]], mem_mib: int = 0, cpu: float = 0,
             dirs: list[str] | None = None, hostname: str = "") -> dict:
        """The spec jail.py carries out for one process of `tenant`."""
        uid = self.uid(tenant)
        return {
            "bwrap": self.isolation.bwrap,
            "uid": uid,
            "gid": uid if self.isolation.own_uids else os.getegid(),
            "user": user_name(uid),
            "home": HOME,
            "hostname": (hostname or "sandbox")[:63],
            "passwd": str(self.dir / f"passwd-{uid}"),
            "group": str(self.dir / f"group-{uid}"),
            "binds": [list(b) for b in binds],
            "dirs": list(dirs or []),
            "tmp_mib": _env_int("DICE_LOCAL_TMP_MIB", DEFAULT_TMP_MIB),
            "cgroup": self.isolation.cgroups,
            "limits": {"mem_mib": int(mem_mib or 0), "cpu": float(cpu or 0),
                       "pids": _env_int("DICE_LOCAL_MAX_PIDS", DEFAULT_PIDS),
                       "nproc": _env_int("DICE_LOCAL_MAX_PIDS", DEFAULT_PIDS) * 8,  # per uid: the whole tenant
                       "nofile": _env_int("DICE_LOCAL_MAX_OPEN_FILES", DEFAULT_NOFILE)},
        }

    def sweep(self) -> int:
        """Remove cgroups left by shims that were killed (SIGKILL) before removing their own."""
        return jail.sweep_cgroups(self.isolation.cgroups) if self.enabled and self.isolation.cgroups else 0

    def own(self, path: str | Path, tenant: str, recursive: bool = False) -> None:
        """Give the tenant's uid a directory or file (and, recursive, all under it)."""
        uid = self.uid(tenant)
        if not self.isolation.own_uids:
            return  # the console's own files already
        top = os.lstat(path)
        if top.st_uid == uid and not recursive:
            return
        os.lchown(path, uid, uid)
        if recursive and os.path.isdir(path) and not os.path.islink(path):
            for base, dirnames, filenames in os.walk(path):
                for name in dirnames + filenames:
                    with contextlib.suppress(FileNotFoundError):
                        os.lchown(os.path.join(base, name), uid, uid)


def user_name(uid: int) -> str:
    return f"dice-{uid}"


def _host_has(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


# A step's agent runs on the console's interpreter without its virtualenv (the agent is standard
# library only); its installation is mounted read-only unless /usr holds it.
AGENT_PYTHON = os.path.realpath(sys.executable)


def step_mounts(folder: str, spec: dict, agent_dir: str, context_path: str = "", python: bool = True) -> dict[str, str]:
    """What a pipeline step's sandbox shows of the host (JobSpec.mounts): its folder (spec,
    metafile, result), its run's directories (`context_path`, one bind, as a pod mounts one
    context volume there; without it, or for a directory outside it: its own directory and those
    it may use, one bind each), its project's cache archives (never a cache's own `path`, which
    the pipeline's author chooses), the agent's code and (`python`: the Python agent runs the
    step, not the compiled runner) its interpreter. Each read-only bind costs a sandbox's start a
    bind in the staging namespace, bubblewrap's bind and its read of the whole mount table.

    One bind for the run's directories, not one per directory the step may use: a step of a wide
    stage uses the whole stage before it, and a hundred sandboxes of a hundred binds each (staged
    by root, then made by bubblewrap, then torn down) made the mount table the machine's
    bottleneck: 100 concurrent starts took 2.4x the wall time and ~20 ms more CPU each."""
    dirs = [spec["workdir"], *spec.get("dirs", {}).values()]
    root = context_path.rstrip("/")
    if root and all(_directly_in(d, root) for d in dirs):
        mounts = {folder: "rw", root: "rw"}
    else:
        mounts = {folder: "rw", **dict.fromkeys(dirs, "rw")}
    for cache in spec.get("caches") or []:
        mounts[os.path.dirname(cache["archive"])] = "rw"
    mounts[agent_dir] = "ro"
    if python and not (sys.base_prefix + "/").startswith(SYSTEM_PREFIXES):
        mounts[sys.base_prefix] = "ro"
    return mounts


def _directly_in(path: str, root: str) -> bool:
    """Whether `path` is a directory directly inside `root`, by its text: a path with `.`, `..`,
    a doubled or trailing slash is not (its step then binds it on its own). As
    dirname(normpath(path)) == root for the paths the console makes, without normpath: a wide
    stage's steps ask it for every directory of the stage before, 10,000 times a stage of 100."""
    name = path[len(root) + 1:] if path.startswith(root + "/") else ""
    return name not in ("", ".", "..") and "/" not in name


def write_spec(path: str, spec: dict) -> str:
    """The spec file the shim reads (root only: it names the tenant's paths)."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(spec))  # json.dump would take the pure-Python encoder
    return path


def foreground_argv(spec_path: str, argv: list[str], cwd: str | None = None) -> list[str]:
    """Run argv once in the sandbox and wait (exec health checks, an addon's setup)."""
    return [sys.executable, "-S", SHIM, "--foreground", "--sandbox", spec_path,
            *(["--cwd", cwd] if cwd else []), "--", *argv]


class TenantBox:
    """One tenant's sandbox for the console's own runs of its code (an addon's setup)."""

    def __init__(self, sandboxes: Sandboxes, tenant: str, spec_dir: Path) -> None:
        self.sandboxes, self.tenant, self.spec_dir = sandboxes, tenant, spec_dir
        self.uid = sandboxes.uid(tenant)
        self.user = user_name(self.uid)

    def own(self, path: str | Path, recursive: bool = False) -> None:
        self.sandboxes.own(path, self.tenant, recursive)

    def wrap(self, argv: list[str], binds: list[str], cwd: str | None = None, name: str = "setup") -> list[str]:
        """argv run once in the tenant's sandbox, seeing `binds` (read-write)."""
        spec = self.sandboxes.spec(self.tenant, binds=[(b, b, "rw") for b in binds], hostname=name)
        return foreground_argv(write_spec(str(self.spec_dir / f"{name}.sandbox.json"), spec), argv, cwd)
