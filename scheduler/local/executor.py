"""LocalExecutor: the Executor protocol over processes on this machine (the `local` cluster kind)."""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from scheduler.base import (
    START_BACKLOG,
    Drift,
    Event,
    ExecutorError,
    ExecutorUnavailable,
    GroupStatus,
    JobEnv,
    JobSpec,
    JobState,
    JobStatus,
    LogLine,
    RuntimeRef,
    RuntimeUsage,
    ServiceGroup,
    ServiceStatus,
    StepJob,
    StepResult,
)
from scheduler.local import addons as addon_mod
from scheduler.local import control, sealed
from scheduler.local import inspect as inspect_mod
from scheduler.local import logs as log_mod
from scheduler.local.autoscale import Autoscaler
from scheduler.local.cron import due_minute, parse_cron
from scheduler.local.drift import local_drift
from scheduler.local.logwatch import JobLogWatch
from scheduler.local.metrics import Sampler
from scheduler.local.plan import check_group, engine_job_envs, plan_group
from scheduler.local.sandbox import SYSTEM_PREFIXES, Isolation, Sandboxes, TenantBox
from scheduler.local.state import (
    PortBook,
    RootLock,
    alive,
    place_file,
    proc_start_time,
    read_json,
    terminate,
    write_json,
    write_text,
)
from scheduler.local.status import group_status
from scheduler.local.steps import step_job
from scheduler.local.supervisor import TICK, Supervisor, base_env, exit_text, priority_prefix, spawn

EVENTS_KEEP = 2000  # events kept per runtime (the file is trimmed past twice that)
FINISHED_JOB_MEMORY = 300.0  # seconds a finished job's record stays in memory (then: its job.json)
FORGET_INTERVAL = 30.0  # how often finished records are looked for
# A job adopted mid-start from a record without a claim file (written by a console of before the
# claim): seconds its shim's pidfile or exitfile is looked for before it counts as never started,
# forgotten so that its owner (the pipeline engine) starts it again. Records with a claim are decided
# by the claim file (_adopt_launched), whatever the time a loaded machine took to reach the shim.
LAUNCH_GRACE = 10.0


def _safe(name: str) -> str:
    """A file name for a job or namespace; a hash suffix keeps distinct names distinct."""
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip(".-")[:100] or "x"
    if clean != name:
        clean += "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return clean


class LocalChanges:
    """Wakes on the supervisor's saves of one runtime's state. In a process that does not
    supervise the root (another one holds its lock), state.json is read every TICK instead."""

    def __init__(self, executor: LocalExecutor, ns: str):
        self.executor, self.ns = executor, ns
        with executor._changed:
            self._seen = executor._generations.get(ns, 0)
        self._closed = False

    def wait(self, timeout: float) -> bool:
        ex = self.executor
        if self._closed:
            return False
        if not ex.leader:
            time.sleep(max(0.0, min(timeout, TICK)))
            return True
        with ex._changed:
            ex._changed.wait_for(lambda: ex._generations.get(self.ns, 0) != self._seen or self._closed,
                                 timeout=max(0.0, timeout))
            changed = ex._generations.get(self.ns, 0) != self._seen
            self._seen = ex._generations.get(self.ns, 0)
            return changed

    def close(self) -> None:
        self._closed = True


@functools.lru_cache(maxsize=256)
def _realpath(path: str) -> str:
    """Read-only mounts are the console's own code and interpreter: resolved once, not per step."""
    return os.path.realpath(path)


class LocalExecutor:
    """Runs service groups and jobs as supervised processes under one state directory.

    One process supervises a root at a time (an flock); a second LocalExecutor on the same root
    in another process can read status, logs and events but refuses changes until the first one
    is gone, at which point it takes over and re-adopts the running processes.
    """

    kind = "local"
    capabilities = inspect_mod.CAPABILITIES

    def __init__(
        self,
        root: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        search_path: list[str] | None = None,
        addon_user: str = "nobody",
        cluster_name: str = "local",
        log_max_bytes: int = 10 * 1024 * 1024,
        log_keep: int = 3,
        job_priority: str | None = None,
        supervise: bool = True,
        allow_shared_tenancy: bool = False,
        isolation: Isolation | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self._job_dirs: dict[tuple[str, str], Path] = {}
        self.root.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.search_path = search_path if search_path is not None else addon_mod.default_search_path()
        self.addon_user = addon_user
        self.cluster_name = cluster_name
        self.log_max_bytes, self.log_keep = log_max_bytes, log_keep
        # Jobs (pipeline steps, batch work) run at a lower CPU priority than services and the
        # console (SCHED_IDLE by default): a machine full of steps still serves the applications,
        # answers pages and dispatches the next steps. Nice values barely help: 100 steps at
        # nice 10 together outweigh the console nine to one.
        self.job_priority = os.environ.get("DICE_LOCAL_JOB_PRIORITY", "idle") if job_priority is None else job_priority
        priority_prefix(self.job_priority)  # refuse a bad value now, not at the first job
        self.ports = PortBook(self.root / "ports.json")
        self.sandboxes = Sandboxes(self.root, isolation)  # None: what this machine allows
        # Without a sandbox every tenant sees the others: one organization only, unless allowed.
        self.allow_shared_tenancy = allow_shared_tenancy
        self.sup = Supervisor(self, clock)
        self.sampler = Sampler()  # usage(): each replica's previous CPU reading
        self.autoscaler = Autoscaler(self)  # services with deployments.autoscale (local/autoscale.py)
        self.jobs: dict[tuple[str, str], dict] = {}
        self._forgot_at = 0.0  # when finished jobs were last dropped from self.jobs
        self._starter = ThreadPoolExecutor(max_workers=4, thread_name_prefix="local-job-start")
        self._held = threading.local()  # starts held back by accepting(), per thread
        self._lock = RootLock(self.root)
        self._control: control.ControlServer | None = None
        self._supervise = supervise
        # DICE_LOCAL_SUPERVISE=0: this process never supervises the root (production mode's web
        # processes: a worker does; their changes go to it over the control socket).
        self._may_lead = os.environ.get("DICE_LOCAL_SUPERVISE", "1").strip().lower() not in ("0", "false", "no")
        self._closed = False
        # Followers of a runtime's status (watch_status) wait here for the supervisor's saves.
        self._changed = threading.Condition()
        self._generations: dict[str, int] = {}
        self._ensure_leader(required=False)

    # ---- leadership and persistence ----------------------------------------------------------

    @property
    def leader(self) -> bool:
        return self._lock.fd is not None

    def _ensure_leader(self, required: bool = True) -> None:
        if self._closed:
            raise ExecutorError("this LocalExecutor is closed")
        if self.leader:
            return
        if not self._may_lead or not self._lock.acquire():
            if required:
                if not self._may_lead:
                    raise ExecutorUnavailable(f"this process does not supervise the local cluster at {self.root} "
                                              "(DICE_LOCAL_SUPERVISE=0): a worker does")
                raise ExecutorUnavailable(
                    f"the local cluster at {self.root} is supervised by another process (pid "
                    f"{self._lock.holder()}); make changes through it"
                )
            return
        with self.sup.lock:
            self._adopt()
        self._control = control.ControlServer(self)  # changes asked in the console's other processes
        self._control.start()
        if self._supervise:
            self.sup.start()
            self.autoscaler.start()

    def _adopt(self) -> None:
        """Load every runtime and job from disk; processes still alive are kept as they are."""
        for path in sorted((self.root / "runtimes").glob("*/state.json")):
            rt = sealed.open_state(self.root, read_json(path))
            if rt:
                self.sup.runtimes[path.parent.name] = rt
                self.event(path.parent.name, "Normal", "Adopted", f"supervision resumed by pid {os.getpid()}", "")
        for path in sorted((self.root / "jobs").glob("*/*/job.json")):
            job = read_json(path)
            if job and job.get("state") == JobState.PENDING.value and job.get("launched"):
                if not self._adopt_launched(job):  # never reached its shim, and now never will
                    path.unlink(missing_ok=True)  # forgotten: its owner starts it (once) again
                    continue
                self.jobs[(job["namespace"], job["name"])] = job  # it may be running: never start it again
                write_json(path, job)
            elif job and job.get("state") == JobState.PENDING.value:
                path.unlink(missing_ok=True)  # accepted by a process that stopped before starting it
            elif job:
                self.jobs[(job["namespace"], job["name"])] = job

    @staticmethod
    def _adopt_launched(job: dict) -> bool:
        """A job whose record says its process was being started, by a process that stopped
        before it wrote the pid: it counts as running, identified by what its shim wrote (the
        pidfile names the shim once its command started; the exitfile says how it ended).
        Without a pidfile, the start's claim file decides (shim.claim): this process creates it
        unless the shim did. Created here, the start never reached its shim and never will (a
        shim that comes later finds the file and runs nothing): False, the job is to be
        forgotten so that its owner starts it again, and it runs once, not never and not twice.
        Created by the shim: it holds the shim's pid and start time, followed as the pidfile's.
        A record without a claim (an older console's) is looked for until LAUNCH_GRACE instead."""
        job["state"] = JobState.RUNNING.value
        job.setdefault("started", job["launched"])
        if job.get("pid"):
            return True
        shim = int((read_json(Path(job["pidfile"])) or {}).get("shim") or 0)
        start_time = proc_start_time(shim) if shim else None
        if not shim and job.get("claim"):
            claim = Path(job["claim"])
            claim.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.close(os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                return False  # taken here: the shim never took it
            except FileExistsError:
                taken = read_json(claim) or {}
            shim, start_time = int(taken.get("shim") or 0), taken.get("start_time")
        job["pid"], job["start_time"] = shim, start_time
        return True

    def close(self) -> None:
        """Stop supervising (threads, front proxies, the lock); processes keep running, so a new
        LocalExecutor on the same root re-adopts them. Use destroy() to stop them."""
        if self._closed:
            return
        self._closed = True
        if self._control is not None:
            self._control.close()
        self._starter.shutdown(wait=False, cancel_futures=True)  # jobs not started stay pending
        self.autoscaler.stop()
        self.sup.close()
        self._lock.release()

    def _here(self) -> bool:
        """True when this process supervises the root (taking it over if nobody does); else a
        change is sent to the supervising process (_forward)."""
        self._ensure_leader(required=False)
        return self.leader

    def _forward(self, op: str, **request) -> None:
        """Have the supervising process make a change (control.py): a web process's scale,
        restart or delete while a worker supervises the root."""
        control.call(self.root, {"op": op, **request}, holder=self._lock.holder() or "")

    def isolation(self) -> dict:
        """What this cluster isolates between tenants (for its capability report)."""
        report = self.sandboxes.isolation.report()
        if not self.sandboxes.enabled:
            report["shared_tenancy"] = "allowed by a staff user" if self.allow_shared_tenancy else "refused"
        return report

    def _admit(self, tenant: str) -> None:
        """Without a sandbox, refuse a second organization's code (unless a staff user allowed it)."""
        if self.sandboxes.enabled or self.allow_shared_tenancy or not tenant:
            return
        with self.sup.lock:
            others = {rt["runtime"].get("org", "") for rt in self.sup.runtimes.values()}
            others |= {job.get("tenant", "") for job in self.jobs.values()
                       if not JobState(job["state"]).finished}
        others -= {"", tenant}
        if others:
            raise ExecutorUnavailable(
                f"the local cluster has no sandbox here ({self.sandboxes.isolation.reason}) and already runs "
                f"code of organization {sorted(others)[0]!r}: it serves one organization at a time unless a "
                "staff user allows shared tenancy on the cluster"
            )

    def unit_sandbox(self, unit: dict, name: str) -> dict | None:
        """The sandbox spec of one of a unit's processes (None: not sandboxed)."""
        box = unit.get("sandbox")
        if not box or not self.sandboxes.enabled:
            return None
        return self.sandboxes.spec(box["tenant"], binds=[tuple(b) for b in box["binds"]],
                                   mem_mib=unit.get("mem_mib", 0), cpu=unit.get("cpu", 0), hostname=name)

    def runtime_dir(self, ns: str) -> Path:
        return self.root / "runtimes" / _safe(ns)

    def _job_dir(self, namespace: str, name: str) -> Path:
        # Asked for every running job at every pass of the step monitor: the path is built once.
        key = (namespace, name)
        found = self._job_dirs.get(key)
        if found is None:
            if len(self._job_dirs) > 100_000:
                self._job_dirs.clear()
            found = self._job_dirs[key] = self.root / "jobs" / _safe(namespace or "_") / _safe(name)
        return found

    def save_runtime(self, ns: str) -> None:
        rt = self.sup.runtimes.get(ns)
        if rt is not None:
            # environments sealed: they hold the tenant's secrets (sealed.py)
            write_json(self.runtime_dir(ns) / "state.json", sealed.seal_state(self.root, rt), mode=0o600)
        self.notify_changed(ns)

    def notify_changed(self, ns: str) -> None:
        """Wake the followers of runtime `ns` (its state changed: a replica started, became
        ready, exited; desired state was edited)."""
        with self._changed:
            self._generations[ns] = self._generations.get(ns, 0) + 1
            self._changed.notify_all()

    def watch_status(self, runtime: RuntimeRef) -> LocalChanges:
        """The supervisor's own notifications of the runtime's changes (scheduler.base.StatusChanges)."""
        return LocalChanges(self, runtime.namespace)

    def _runtime_state(self, ns: str) -> dict | None:
        if self.leader:
            return self.sup.runtimes.get(ns)
        return sealed.open_state(self.root, read_json(self.runtime_dir(ns) / "state.json"))

    def event(self, ns: str, type_: str, reason: str, message: str, obj: str) -> None:
        path = (self.runtime_dir(ns) if ns else self.root) / "events.jsonl"
        if ns and not path.parent.exists():
            return
        record = {"timestamp": time.time(), "type": type_, "reason": reason, "message": message, "object": obj}
        with open(path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if path.stat().st_size > EVENTS_KEEP * 400:
            lines = path.read_text().splitlines()[-EVENTS_KEEP:]
            write_text(path, "\n".join(lines) + "\n")  # events of several threads: no shared temp name

    def tick(self) -> None:
        """One supervision pass now (the loop runs them every 0.2 s; tests with a fake clock call it)."""
        self._ensure_leader()
        self.sup.tick()

    # ---- service groups ----------------------------------------------------------------------

    def apply(self, group: ServiceGroup) -> None:
        self._ensure_leader()
        check_group(group, self.search_path)
        ns = group.runtime.namespace
        self._admit(group.runtime.org)
        rdir = self.runtime_dir(ns)
        rdir.mkdir(parents=True, exist_ok=True)
        box = None
        if self.sandboxes.enabled:
            (rdir / "run").mkdir(exist_ok=True)
            box = TenantBox(self.sandboxes, group.runtime.org or ns, rdir / "run")
        with self.sup.lock:
            units, cron = plan_group(
                group, ns=ns, runtime_dir=rdir, ports=self.ports, search_path=self.search_path,
                addon_user=self.addon_user, cluster_name=self.cluster_name, box=box,
            )
            rt = self.sup.runtimes.get(ns) or {"units": {}, "cron": {}}
            rt.pop("exported", None)  # what runtime_envs read (before job_envs): secrets kept for nothing
            rt["runtime"] = dataclasses.asdict(group.runtime)
            rt["release"] = group.release
            for name, old in list(rt["units"].items()):
                if name not in units:
                    self._stop_unit(ns, old)
                    del rt["units"][name]
                    self.ports.release(f"{ns}/service/{name}/")
                    self.ports.release(f"{ns}/addon/{name}/")
                    self.event(ns, "Normal", "Pruned", f"{old['kind']} {name} is no longer in the spec", name)
            for name, unit in units.items():
                old = rt["units"].get(name)
                if old is not None:
                    unit["slots"] = old.get("slots", {})
                    unit["seq"] = old.get("seq", 0)
                    unit["token"] = old.get("token", 0)
                    if unit.get("autoscale") and old.get("autoscale"):  # a deploy keeps what was scaled to
                        bounds = unit["autoscale"]
                        unit["replicas"] = max(bounds["min"], min(bounds["max"], old["replicas"]))
                        unit["autoscale"]["last_change"] = old["autoscale"].get("last_change", 0.0)
                rt["units"][name] = unit
            now = self.clock()
            rt["cron"] = {name: {**entry, "last": rt.get("cron", {}).get(name, {}).get("last", now)}
                          for name, entry in cron.items()}
            self.sup.runtimes[ns] = rt
            self.save_runtime(ns)
            self.event(ns, "Normal", "Applied", f"release {group.release or '-'}: {len(units)} units", "")
        self.sup.wake.set()

    def job_envs(self, group: ServiceGroup) -> dict[str, JobEnv]:
        """The environment of each data engine's job of `group` (`engine: spark|flink`, run by a
        data cluster beside this one) and its secret names: this cluster's addon variables and
        discovery as its own jobs see them, the file's envs, configs and console variables
        (EngineRouted asks, after apply)."""
        ns = group.runtime.namespace
        with self.sup.lock:
            return engine_job_envs(group, self.ports, ns, self.runtime_dir(ns), self.cluster_name)

    def _stop_unit(self, ns: str, unit: dict) -> None:
        for slot in unit.get("slots", {}).values():
            for which in ("current", "next"):
                self.sup.stop_async(slot.get(which), unit.get("stop_signal", signal.SIGTERM))
        unit["slots"] = {}

    def _unit(self, runtime: RuntimeRef, service: str) -> tuple[str, dict]:
        ns = runtime.namespace
        rt = self.sup.runtimes.get(ns)
        if rt is None or service not in rt["units"]:
            raise ExecutorError(f"no service {service!r} in runtime {runtime.name!r}")
        return ns, rt["units"][service]

    def scale(self, runtime: RuntimeRef, service: str, replicas: int) -> None:
        if replicas < 0:
            raise ExecutorError("replicas must be >= 0")
        if not self._here():
            return self._forward("scale", runtime=dataclasses.asdict(runtime), service=service, replicas=replicas)
        with self.sup.lock:
            ns, unit = self._unit(runtime, service)
            if unit["kind"] != "service":
                raise ExecutorError(f"{service!r} is an addon; addons run one instance locally")
            if unit["replicas"] != replicas:
                self.event(ns, "Normal", "Scaled", f"{service}: {unit['replicas']} -> {replicas} replicas", service)
            unit["replicas"] = replicas
            self.save_runtime(ns)
        self.sup.wake.set()

    def restart(self, runtime: RuntimeRef, service: str) -> None:
        """Rolling: each replica's successor starts and becomes ready before the old one stops."""
        if not self._here():
            return self._forward("restart", runtime=dataclasses.asdict(runtime), service=service)
        with self.sup.lock:
            ns, unit = self._unit(runtime, service)
            unit["token"] = unit.get("token", 0) + 1
            self.event(ns, "Normal", "Restarting", f"rolling restart of {service}", service)
            self.save_runtime(ns)
        self.sup.wake.set()

    def destroy(self, runtime: RuntimeRef) -> None:
        if not self._here():
            return self._forward("destroy", runtime=dataclasses.asdict(runtime))
        ns = runtime.namespace
        with self.sup.lock:
            rt = self.sup.runtimes.pop(ns, None)
            self.sup.close_proxies(ns)
            procs = []
            if rt is not None:
                for unit in rt["units"].values():
                    for slot in unit.get("slots", {}).values():
                        for which in ("current", "next"):
                            rec = slot.get(which)
                            if rec and rec.get("pid"):
                                procs.append((rec["pid"], rec.get("start_time"), rec.get("pidfile"),
                                              unit.get("stop_signal", 15)))
            for (job_ns, name), job in list(self.jobs.items()):
                if job_ns == ns:
                    procs.append((job.get("pid", 0), job.get("start_time"), job.get("pidfile"), signal.SIGTERM))
                    self.jobs.pop((job_ns, name))
        for sig in {p[3] for p in procs}:
            terminate([(pid, st, pf) for pid, st, pf, s in procs if s == sig and pid], sig=sig)
        with self.sup.lock:
            self.sup.stopping = [s for s in self.sup.stopping if alive(s["pid"], s["start_time"])]
        self.ports.release(f"{ns}/")
        rdir = self.runtime_dir(ns)
        for addon_dir in (rdir / "addons").glob("*"):
            addon_mod.remove_data(addon_dir)
        shutil.rmtree(rdir, ignore_errors=True)
        shutil.rmtree(self.root / "jobs" / _safe(ns), ignore_errors=True)

    def destroy_all(self) -> None:
        """Destroy every runtime and stop every job under this root (tests, `dice local reset`)."""
        self._ensure_leader()
        for ns in list(self.sup.runtimes):
            rt = self.sup.runtimes[ns]
            self.destroy(RuntimeRef(**rt["runtime"]))
        with self.sup.lock:
            jobs = list(self.jobs.values())
            self.jobs.clear()
        terminate([(j["pid"], j.get("start_time"), j.get("pidfile")) for j in jobs if j.get("pid")])

    def runtimes(self) -> list[RuntimeRef]:
        with self.sup.lock:
            return [RuntimeRef(**rt["runtime"]) for rt in self.sup.runtimes.values()]

    def status(self, runtime: RuntimeRef) -> GroupStatus:
        with self.sup.lock:
            rt = self._runtime_state(runtime.namespace)
            return group_status(runtime, rt)

    def drift(self, group: ServiceGroup) -> Drift:
        """What runs against what the group (the runtime's release) asks for (scheduler.local.drift)."""
        with self.sup.lock:
            state = self._runtime_state(group.runtime.namespace)
            return local_drift(group, copy.deepcopy(state) if state is not None else None,
                               group.cluster_name or self.cluster_name)

    def service_status(self, runtime: RuntimeRef, service: str) -> ServiceStatus:
        status = self.status(runtime)
        found = status.services.get(service) or status.addons.get(service)
        if found is None:
            raise ExecutorError(f"no service {service!r} in runtime {runtime.name!r}")
        return found

    def usage(self, runtime: RuntimeRef) -> RuntimeUsage:
        """CPU and memory of each service replica's process tree, from /proc (local/metrics.py)."""
        status, pids = self.status(runtime), self.pids(runtime)
        replicas = [{"service": name, "replica": r.name, "restarts": r.restarts, "ready": r.ready,
                     "pid": (pids.get(r.name) or {}).get("process") or (pids.get(r.name) or {}).get("shim", 0)}
                    for name, svc in status.services.items() for r in svc.replicas]
        usage = self.sampler.measure(runtime, replicas)
        with self.sup.lock:  # what the front proxies saw, per service (counters)
            proxies = [(key[1], proxy.traffic()) for key, proxy in self.sup.proxies.items()
                       if key[0] == runtime.namespace]
        for service, counts in proxies:
            total = usage.traffic.setdefault(service, {"connections": 0, "replies": 0, "first_byte_seconds": 0.0})
            for name, value in counts.items():
                total[name] += value
        return usage

    def pids(self, runtime: RuntimeRef) -> dict[str, dict[str, int]]:
        """Replica name -> {"shim": pid, "process": pid} (diagnostics, tests)."""
        out: dict[str, dict[str, int]] = {}
        with self.sup.lock:
            rt = self._runtime_state(runtime.namespace) or {"units": {}}
            for unit in rt["units"].values():
                for key, slot in unit.get("slots", {}).items():
                    rec = slot.get("current")
                    if rec and alive(rec["pid"], rec.get("start_time")):
                        child = (read_json(Path(rec["pidfile"])) or {}).get("pid", 0)
                        out[f"{unit['name']}-{key}"] = {"shim": rec["pid"], "process": child}
        return out

    def logs(
        self, runtime: RuntimeRef, service: str, *, follow: bool = False, tail: int | None = None
    ) -> Iterator[LogLine]:
        logs_dir = self.runtime_dir(runtime.namespace) / "logs"
        pattern = re.compile(rf"{re.escape(service)}-\d+\.log")

        def discover() -> dict[str, Path]:
            return {p.name[:-4]: p for p in logs_dir.glob(f"{service}-*.log") if pattern.fullmatch(p.name)}

        return log_mod.stream(discover, follow=follow, tail=tail)

    def events(self, runtime: RuntimeRef, service: str | None = None) -> list[Event]:
        path = self.runtime_dir(runtime.namespace) / "events.jsonl"
        out = []
        try:
            lines = path.read_text().splitlines()
        except OSError:
            return []
        for line in lines[-EVENTS_KEEP:]:
            try:
                data = json.loads(line)
            except ValueError:
                continue
            obj = data.get("object", "")
            if service is not None and not re.fullmatch(rf"{re.escape(service)}(-\d+)?", obj):
                continue
            out.append(Event(data["timestamp"], data["type"], data["reason"], data["message"], obj))
        return out

    # ---- cron --------------------------------------------------------------------------------

    def fire_cron(self, ns: str, rt: dict) -> None:
        """Called by each supervision pass: start the runs of scheduled jobs that came due."""
        now = self.clock()
        for name, entry in rt.get("cron", {}).items():
            due = due_minute(parse_cron(entry["schedule"]), entry.get("last", now), now)
            entry["last"] = now
            if due is None:
                continue
            run = f"{ns}-{name}-{due:%Y%m%d%H%M}"
            self.event(ns, "Normal", "CronFired", f"{name} due at {due:%Y-%m-%d %H:%M}: job {run}", name)
            self._start_job(
                JobSpec(name=run, command=entry["command"], envs=entry["envs"], workdir=entry["workdir"],
                        mem=entry["mem"], cpu=entry.get("cpu") or 0.1, timeout=entry["timeout"], namespace=ns,
                        labels={"dice.io/cron": name}, tenant=entry.get("tenant", ""),
                        mounts={entry["workdir"]: "rw"})
            )

    def cron_runs(self, runtime: RuntimeRef, job: str) -> list[JobStatus]:
        ns = runtime.namespace
        with self.sup.lock:
            names = sorted(n for (jns, n), j in self.jobs.items()
                           if jns == ns and j.get("labels", {}).get("dice.io/cron") == job)
        return [self.job_status(n, ns) for n in names]

    # ---- jobs --------------------------------------------------------------------------------

    @contextmanager
    def accepting(self) -> Iterator[None]:
        """Accept a burst of jobs first, then start their processes: the jobs run_job accepts in
        this thread inside the block go to the starter threads when it ends. Otherwise the
        starts of a burst's first jobs compete (for the interpreter lock) with accepting the rest,
        and the burst's last job is accepted later than the whole burst needs."""
        if getattr(self._held, "starts", None) is not None:  # nested: the outer block starts them
            yield
            return
        self._held.starts = []
        try:
            yield
        finally:
            starts, self._held.starts = self._held.starts, None
            for args in starts:
                self._submit_start(args)

    def _start_job(self, job: JobSpec) -> JobStatus:
        """Accept the job unless one of that name exists: it is recorded in memory (state
        pending) and the starter threads place its files, start its process and write its record
        (job.json), as a kubelet starts the pods of an accepted Job. A burst of 100 starts thus
        costs the caller a dictionary entry each, not files (each file created is 0.1-1 ms on a
        busy disk) and a fork/exec (5-30 ms on a busy machine). A pending job is not written:
        one whose process never started because this process stopped would be forgotten on
        re-adoption anyway (MISSING), so its owner starts it anew."""
        key = (job.namespace, job.name)
        with self.sup.lock:
            existing = self.jobs.get(key) or read_json(self._job_dir(*key) / "job.json")
            if existing:
                self.jobs.setdefault(key, existing)
                return self._job_status(existing)
            if not job.command:
                raise ExecutorError(f"job {job.name!r} has no command: the local cluster runs commands, not images")
            relative = [path for path in [*job.files, *job.mounts] if not os.path.isabs(path)]
            if relative:
                raise ExecutorError(f"job {job.name!r}: file paths must be absolute, not {', '.join(relative)}")
            bad = sorted(mode for mode in job.mounts.values() if mode not in ("rw", "ro"))
            if bad:
                raise ExecutorError(f"job {job.name!r}: a mount is \"rw\" or \"ro\", not {bad[0]!r}")
            # abspath, not resolve(): the same directory for a cwd, without an lstat per component
            workdir = os.path.abspath(job.workdir) if job.workdir else str(self._job_dir(*key) / "work")
            record = {"name": job.name, "namespace": job.namespace, "labels": dict(job.labels),
                      "image": job.image, "command": list(job.command), "workdir": workdir,
                      "timeout": job.timeout, "state": JobState.PENDING.value, "message": "",
                      "accepted": time.time(), "tenant": job.tenant or job.namespace}
            self.jobs[key] = record
        start = (key, record, dict(job.envs), job.mem, dict(job.files), dict(job.mounts), job.cpu)
        held = getattr(self._held, "starts", None)
        if held is not None:
            held.append(start)
        else:
            self._submit_start(start)
        return self._job_status(record)

    def _submit_start(self, start: tuple) -> None:
        """To a starter thread; counted in START_BACKLOG until it ran (or was cancelled)."""
        START_BACKLOG.add()
        try:
            future = self._starter.submit(self._spawn_job, *start)
        except BaseException:
            START_BACKLOG.done()
            raise
        future.add_done_callback(START_BACKLOG.done)

    def run_job(self, job: JobSpec) -> JobStatus:
        self._ensure_leader()
        self._admit(job.tenant or job.namespace)
        return self._start_job(job)

    def _job_sandbox(self, record: dict, mem: int, cpu: float, files: dict[str, str],
                     mounts: dict[str, str]) -> dict | None:
        """Make a job's directories and placed files its tenant's, and say what its sandbox binds:
        the workdir, its mounts, placed files outside those, and the program if it lives outside
        the system directories (the console's interpreter for the agent)."""
        if not self.sandboxes.enabled:
            return None
        tenant = record["tenant"]
        workdir = record["workdir"]
        binds = {workdir: "rw"}
        for path, mode in mounts.items():
            binds[os.path.abspath(path)] = mode
        for path in list(binds):
            if binds[path] == "rw":
                os.makedirs(path, exist_ok=True)
                self.sandboxes.own(path, tenant)
        # A read-write directory inside another read-write bind is already there: a bind fewer
        # (each costs the sandbox's start a staged mount, bubblewrap's mount and their teardown).
        writable = tuple(p.rstrip("/") + "/" for p, m in binds.items() if m == "rw")
        for path in [p for p, m in binds.items() if m == "rw" and p.startswith(writable)]:
            del binds[path]
        bound = tuple(p.rstrip("/") + "/" for p in binds)
        for path in files:
            self.sandboxes.own(path, tenant)  # mode 0600: its uid alone reads it
            if not path.startswith(bound):
                binds[path] = "ro"
        program = record["command"][0] if record["command"] else ""
        if os.path.isabs(program) and not program.startswith(SYSTEM_PREFIXES) and os.path.exists(program):
            binds.setdefault(program, "ro")
        spec_binds = [(_realpath(p) if binds[p] == "ro" else p, p, binds[p]) for p in sorted(binds, key=len)]
        memory = mem or int(os.environ.get("DICE_LOCAL_JOB_MEM_MIB", "0") or 0)
        # A step's `cpu` is small by default (0.1): as a hard quota it would make every step's
        # interpreter start ten times slower; jobs already yield to everything (SCHED_IDLE), so
        # the quota only keeps one job from taking more than its share of the machine.
        floor = float(os.environ.get("DICE_LOCAL_JOB_CPU_FLOOR", "1") or 1)
        return self.sandboxes.spec(tenant, binds=spec_binds, mem_mib=memory, cpu=max(cpu, floor),
                                   hostname=record["name"])

    def _spawn_job(self, key: tuple[str, str], record: dict, envs: dict, mem: int, files: dict[str, str],
                   mounts: dict[str, str], cpu: float) -> None:
        """In a starter thread: place an accepted job's files and start its process (unless it
        was cancelled or its namespace destroyed meanwhile); record it as running, or failed when
        it cannot start."""
        jdir = self._job_dir(*key)
        with self.sup.lock:
            if self.jobs.get(key) is not record or record["state"] != JobState.PENDING.value:
                return
        try:
            for path, text in files.items():
                place_file(path, text)
            Path(record["workdir"]).mkdir(parents=True, exist_ok=True)
            sandbox = self._job_sandbox(record, mem, cpu, files, mounts)
            # The record at the fork, written whole before the process can exist: a process that
            # stops from here on leaves a job that re-adoption finds (and never starts again)
            # by its shim's pidfile and exitfile, or its claim (_adopt_launched).
            # Written outside the lock (starts of a burst and the supervision pass share it), then
            # checked again: a cancel that came meanwhile is what the file says, and no process starts.
            with self.sup.lock:
                if self.jobs.get(key) is not record or record["state"] != JobState.PENDING.value:
                    return
                # The claim: a file of this start alone, taken by its shim first thing (or by a
                # console that adopts the job before the shim took it: then it never runs).
                record.update(launched=time.time(), pidfile=str(jdir / "run" / "job.pid"),
                              exitfile=str(jdir / "run" / "job.exit"),
                              claim=str(jdir / "run" / f"job.claim-{os.urandom(6).hex()}"))
                launched = dict(record)
            write_json(jdir / "job.json", launched)
            with self.sup.lock:
                if self.jobs.get(key) is not record or record["state"] != JobState.PENDING.value:
                    if self.jobs.get(key) is record:
                        write_json(jdir / "job.json", record)
                    return
            rec = spawn(record["command"], env={**base_env(), **envs}, cwd=record["workdir"], log=jdir / "job.log",
                        run_prefix=jdir / "run" / "job", mem_mib=mem,
                        log_max_bytes=self.log_max_bytes, log_keep=self.log_keep, priority=self.job_priority,
                        sandbox=sandbox, claim=record["claim"])
        except Exception as exc:  # whatever it was, the job failed to start: say why
            with self.sup.lock:
                if self.jobs.get(key) is record and record["state"] == JobState.PENDING.value:
                    record.update(state=JobState.FAILED.value, message=f"could not start: {exc}", finished=time.time())
                    write_json(jdir / "job.json", record)
            return
        with self.sup.lock:
            record.update(rec)
            if self.jobs.get(key) is not record or record["state"] != JobState.PENDING.value:
                self.sup.stop_async(record)  # cancelled or destroyed while it started
                if record["state"] == JobState.PENDING.value:
                    record["state"] = JobState.CANCELLED.value
            else:
                record["state"] = JobState.RUNNING.value
            write_json(jdir / "job.json", record)

    def _forget_finished_jobs(self, now: float) -> None:
        """Drop from memory the records of jobs that finished over FINISHED_JOB_MEMORY seconds ago
        (their job.json stays: job_status and a second start of the same job read it there).
        Kept, every step of every run stayed in this dict for the process's life: the console
        grew with each run (bench/bench_memory.py) and each supervision pass walked them all.
        Cron runs stay: cron_runs lists them from here. Called with the lock held."""
        if now - self._forgot_at < FORGET_INTERVAL:
            return
        self._forgot_at = now
        old = [key for key, job in self.jobs.items()
               if JobState(job["state"]).finished and job.get("finished")
               and now - job["finished"] > FINISHED_JOB_MEMORY and "dice.io/cron" not in (job.get("labels") or {})]
        for key in old:
            del self.jobs[key]

    def supervise_jobs(self) -> None:
        """Called by each supervision pass: finish, time out or reap jobs. Liveness is read from
        /proc outside the lock, so starting a burst of jobs does not wait behind a pass."""
        with self.sup.lock:
            self._forget_finished_jobs(time.time())
            running = [(key, job) for key, job in self.jobs.items() if job["state"] == JobState.RUNNING.value]
        if not running:
            return
        now = time.time()
        for _, job in running:
            if not job.get("pid") and job.get("launched"):  # adopted mid-start, no claim: its shim may write now
                self._adopt_launched(job)
        ended = [(key, job) for key, job in running if not alive(job["pid"], job.get("start_time"))
                 and not (not job.get("pid") and job.get("launched") and now - job["launched"] < LAUNCH_GRACE
                          and not os.path.exists(job["exitfile"]))]
        late = [(key, job) for key, job in running if job.get("timeout") and now - job["started"] > job["timeout"]
                and not job.get("stop_reason")]
        if not ended and not late:
            return
        with self.sup.lock:
            for key, job in ended:
                if job["state"] != JobState.RUNNING.value:
                    continue
                if (job.get("launched") and not job.get("pid") and not job.get("stop_reason")
                        and not os.path.exists(job["exitfile"]) and not os.path.exists(job["pidfile"])):
                    # Launched by a process that stopped before the fork: nothing of it ran.
                    # Forgotten, so that the owner sees it missing and starts it (once) again.
                    del self.jobs[key]
                    (self._job_dir(*key) / "job.json").unlink(missing_ok=True)
                    continue
                info = read_json(Path(job["exitfile"])) or {}
                if job.get("stop_reason"):
                    job["state"] = job["stop_state"]
                    job["message"] = job["stop_reason"]
                else:
                    ok = info.get("code") == 0
                    job["state"] = (JobState.SUCCEEDED if ok else JobState.FAILED).value
                    job["message"] = "" if ok else exit_text(info) if info else (
                        "its start was interrupted (the console stopped); it was not started again"
                        if job.get("launched") and not job.get("pid") else "exited without a status")
                job["exit_code"] = info.get("code")
                job["finished"] = info.get("time") or now
                write_json(self._job_dir(*key) / "job.json", job)
            for key, job in late:
                if job["state"] == JobState.RUNNING.value and not job.get("stop_reason"):
                    self._stop_job(job, JobState.FAILED, f"timed out after {job['timeout']}s")
                    write_json(self._job_dir(*key) / "job.json", job)

    def _stop_job(self, job: dict, state: JobState, reason: str) -> None:
        job["stop_state"], job["stop_reason"] = state.value, reason
        self.sup.stop_async(job)

    def _job_status(self, job: dict) -> JobStatus:
        return JobStatus(
            name=job["name"], state=JobState(job["state"]), exit_code=job.get("exit_code"),
            started=job.get("started"), finished=job.get("finished"), message=job.get("message", ""),
        )

    def job_status(self, name: str, namespace: str = "") -> JobStatus:
        with self.sup.lock:
            job = self.jobs.get((namespace, name)) if self.leader else None
            job = job or read_json(self._job_dir(namespace, name) / "job.json")
        if not job:
            return JobStatus(name=name, state=JobState.MISSING)
        return self._job_status(job)

    def cancel_job(self, name: str, namespace: str = "") -> None:
        if not self._here():
            return self._forward("cancel_job", name=name, namespace=namespace)
        with self.sup.lock:
            job = self.jobs.get((namespace, name))
            if job and job["state"] == JobState.PENDING.value:  # never started: it never will
                job.update(state=JobState.CANCELLED.value, message="cancelled", finished=time.time())
                write_json(self._job_dir(namespace, name) / "job.json", job)
            elif job and job["state"] == JobState.RUNNING.value and not job.get("stop_reason"):
                self._stop_job(job, JobState.CANCELLED, "cancelled")
                write_json(self._job_dir(namespace, name) / "job.json", job)
        self.sup.wake.set()

    def job_log_mark(self, name: str, namespace: str = "") -> tuple | None:
        """Changes whenever the job's log does (size and modification time of its file): a reader
        polling many jobs reads only the logs that grew. None when there is no log yet."""
        try:
            st = (self._job_dir(namespace, name) / "job.log").stat()
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns, st.st_ino

    def job_logs(self, name: str, namespace: str = "", *, follow: bool = False) -> Iterator[LogLine]:
        path = self._job_dir(namespace, name) / "job.log"
        return log_mod.stream(
            lambda: {name: path} if path.exists() else {},
            follow=follow,
            tail=None,
            finished=lambda: self.job_status(name, namespace).state.finished
            or self.job_status(name, namespace).state is JobState.MISSING,
        )

    def job_log_from(self, name: str, namespace: str = "", position: tuple | None = None,
                     after: int = 0) -> tuple[list[LogLine], tuple | None]:
        """The job's lines since `position` (see scheduler.base.job_log_from): only what the
        shim wrote since, across its rotations (logs.read_from)."""
        return log_mod.read_from(self._job_dir(namespace, name) / "job.log", name, position, after)

    def job_log_watch(self) -> JobLogWatch:
        """Which watched jobs' logs grew, by inotify on their folders (scheduler.base.job_log_watch)."""
        return JobLogWatch(self._job_dir)

    # ---- the protocol's names for what this driver does ---------------------------------------

    def job_log_version(self, name: str, namespace: str = "") -> tuple | None:
        return self.job_log_mark(name, namespace)

    def job_batch(self):
        return self.accepting()

    def start_step(self, step: StepJob) -> JobStatus:
        return self.run_job(step_job(step))

    def step_result(self, name: str, namespace: str, status: JobStatus) -> StepResult | None:
        return None  # the agent writes its result to the step's folder itself

    # ---- inspection: the same as the kind's Inspector --------------------------------------------

    def check(self) -> dict:
        return inspect_mod.INSPECTOR.check()

    def snapshot(self) -> dict:
        return inspect_mod.snapshot(self.root)

    def set_node_labels(self, node: str, labels: dict[str, str | None]) -> dict[str, str]:
        return inspect_mod.INSPECTOR.set_node_labels(node, labels)

    def inspection_data(self) -> dict:
        return inspect_mod.INSPECTOR.inspection_data()
