"""The `local` cluster kind: services, addons and jobs as supervised processes on this machine.

Each replica is a process started through a small shim (shim.py) in its own session, so it
outlives the console; state (pids, /proc start times, ports) lives under the root directory
(ClusterRef.config["root"], else $DICE_LOCAL_ROOT, else ./var/local) and a restarted console
re-adopts what is still running.

What is isolated and what is not:
- Memory: RLIMIT_AS (address space, not resident memory) of each service and job process is set
  to its memory limit (DICE_MEM_LIMIT, MiB). Addons get no limit (PostgreSQL and Redis reserve
  more address space than they use).
- Not isolated: CPU (no quota; DICE_CPU_* are only advisory), filesystem (a service runs in the
  release's working directory as the console's user and sees the whole machine), network (every
  process binds 127.0.0.1 and can reach every other port), process table, users. No cgroups and
  no namespaces are used; `image` is recorded but never run.
- Environment: only PATH, HOME, LANG, LC_ALL, TZ, TMPDIR, USER and LOGNAME pass through from the
  console; everything else a service sees is what SPEC.md lists, plus PORT/PORT0..n.
- PostgreSQL refuses root: as root, initdb and postgres run as `nobody` (see addons.py).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from scheduler.base import ClusterRef
from scheduler.local.executor import LocalExecutor
from scheduler.local.inspect import CAPABILITIES, INSPECTOR, LocalInspector
from scheduler.local.state import default_root

__all__ = ["CAPABILITIES", "LABEL", "LocalExecutor", "create_executor", "create_inspector"]

LABEL = "Local processes"

_EXECUTORS: dict[Path, LocalExecutor] = {}
_GUARD = threading.Lock()


def create_executor(cluster: ClusterRef) -> LocalExecutor:
    """One LocalExecutor per root in this process: it owns the supervision thread and proxies."""
    root = Path(cluster.config.get("root") or default_root()).resolve()
    with _GUARD:
        found = _EXECUTORS.get(root)
        if found is None or found._closed:
            options = {k: cluster.config[k] for k in ("addon_user", "log_max_bytes", "log_keep", "job_priority") if k in cluster.config}
            if "search_path" in cluster.config:
                options["search_path"] = list(cluster.config["search_path"])
            found = _EXECUTORS[root] = LocalExecutor(
                root, cluster_name=cluster.name or os.environ.get("DICE_LOCAL_CLUSTER", "local"), **options
            )
        return found


def create_inspector(cluster: ClusterRef) -> LocalInspector:
    """What the console asks about the machine, without supervising the root."""
    return INSPECTOR
