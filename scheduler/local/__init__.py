"""The `local` cluster kind: services, addons and jobs as supervised processes on this machine.

Each replica is a process started through a small shim (shim.py) in its own session, so it
outlives the console; state (pids, /proc start times, ports) lives under the root directory
(ClusterRef.config["root"], else $DICE_LOCAL_ROOT, else ./var/local) and a restarted console
re-adopts what is still running.

What is isolated and what is not: every tenant process runs in a sandbox (sandbox.py: its
organization's uid, its own root filesystem without the console's data directory, its own PID
namespace, cgroup limits; jail.py carries it out) when the machine allows it; isolation_report()
says what this machine gives, and "isolation: none" when it gives nothing, in which case the
executor serves one organization at a time unless the cluster allows shared tenancy.
- Not isolated: the network (every process binds 127.0.0.1 and can reach every loopback port);
  `image` is recorded but never run.
- Without a sandbox: memory is limited by RLIMIT_AS (address space) only; PostgreSQL, which
  refuses root, runs as `nobody` (see addons.py).
- Environment: only PATH, LANG, LC_ALL and TZ pass through from the console (HOME, TMPDIR, USER
  and LOGNAME too without a sandbox); everything else a service sees is what SPEC.md lists, plus
  PORT/PORT0..n.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from scheduler.base import ClusterRef
from scheduler.local.executor import LocalExecutor
from scheduler.local.inspect import CAPABILITIES, LocalInspector
from scheduler.local.sandbox import isolation_report
from scheduler.local.state import default_root

__all__ = ["CAPABILITIES", "LABEL", "LocalExecutor", "create_executor", "create_inspector", "isolation_report"]

LABEL = "Local processes"

_EXECUTORS: dict[Path, LocalExecutor] = {}
_GUARD = threading.Lock()


def create_executor(cluster: ClusterRef) -> LocalExecutor:
    """One LocalExecutor per root in this process: it owns the supervision thread and proxies."""
    root = Path(cluster.config.get("root") or default_root()).resolve()
    with _GUARD:
        found = _EXECUTORS.get(root)
        if found is not None and not found._closed:
            found.allow_shared_tenancy = bool(cluster.config.get("allow_shared_tenancy", False))
        if found is None or found._closed:
            options = {k: cluster.config[k] for k in ("addon_user", "log_max_bytes", "log_keep", "job_priority",
                                                     "allow_shared_tenancy") if k in cluster.config}
            if "search_path" in cluster.config:
                options["search_path"] = list(cluster.config["search_path"])
            found = _EXECUTORS[root] = LocalExecutor(
                root, cluster_name=cluster.name or os.environ.get("DICE_LOCAL_CLUSTER", "local"), **options
            )
        return found


def create_inspector(cluster: ClusterRef) -> LocalInspector:
    """What the console asks about the machine and what the root's runtimes run on it, without
    supervising the root."""
    return LocalInspector(Path(cluster.config.get("root") or default_root()).resolve())
