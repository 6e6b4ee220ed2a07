"""The supervision loop: starts replicas and addons, probes them, restarts them with backoff,
rolls them on change, feeds the front proxies and fires cron jobs."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from scheduler.local import health
from scheduler.local.proxy import FrontProxy
from scheduler.local.sandbox import foreground_argv, write_spec
from scheduler.local.state import (
    CHILDREN,
    _reap,
    alive,
    ephemeral_port,
    kill_all,
    proc_start_time,
    read_json,
    signal_pid,
)
from scheduler.local.steps import compiled_or_python, mask_forms

SHIM = str(Path(__file__).with_name("shim.py"))
SPAWNER = str(Path(__file__).with_name("spawner.py"))
# The compiled shim (agent/gorunner/shim.go and jail.go, built alone as `dice-shim`), built by
# `make install` where Go is installed (gitignored).
SHIM_PROGRAM = str(Path(__file__).resolve().parents[2] / "agent" / "bin" / "dice-shim")
# The compiled shim's own environment (shim.go goEnv): one processor, no collector, and no look
# at the cgroup's CPU limit (Go's container-aware GOMAXPROCS opens cgroup files at every start).
GO_ENV = {"GOMAXPROCS": "1", "GOGC": "off", "GODEBUG": "containermaxprocs=0,updatemaxprocs=0"}


def shim_kind() -> str:
    """Which shim starts local processes: "go" (the compiled one, started straight from the
    console: a vfork and an exec of a small static program) or "python" (shim.py, forked from the
    process starter). DICE_LOCAL_SHIM=auto|go|python; auto: go where it is built. A bad value, or
    go without the program, is a ValueError."""
    return compiled_or_python("DICE_LOCAL_SHIM", SHIM_PROGRAM)


@functools.cache
def priority_prefix(priority: str) -> tuple[str, ...]:
    """The command that starts a process at `priority` ("" normal, "idle", or a nice value).
    Cached: it is looked up on PATH, and every process start asks."""
    priority = str(priority or "").strip()
    if priority in ("", "0", "normal"):
        return ()
    if priority == "idle":
        chrt = shutil.which("chrt")
        if chrt:
            return (chrt, "--idle", "0")
        priority = "19"  # no util-linux: the lowest nice value is the nearest thing
    if not priority.isdigit() or not 1 <= int(priority) <= 19:
        raise ValueError(f"job priority {priority!r}: use idle, normal or a nice value 1-19")
    nice = shutil.which("nice")
    return (nice, "-n", priority) if nice else ()
TICK = 0.2  # seconds between supervision passes
BACKOFF_BASE = 0.5  # seconds before the first restart; doubles per consecutive failure
BACKOFF_CAP = 30.0
STABLE_AFTER = 60.0  # a replica up this long resets its failure count
STOP_GRACE = 5.0  # seconds between the stop signal and SIGKILL
SWEEP_EVERY = 60.0  # seconds between sweeps of the cgroups of shims killed outright
# Variables passed through from the console's environment; nothing else leaks into services.
PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME")


def base_env() -> dict[str, str]:
    env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def exit_text(info: dict | None) -> str:
    if not info:
        return "exited"
    if info.get("signal"):
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(info['signal']).name}"
        return f"killed by signal {info['signal']}"
    return f"exit {info.get('code')}"


class Starter:
    """The console's link to its process starter (spawner.py: a pre-forking server the shims are
    forked from), started on first use and again if it died. Without it (DICE_LOCAL_SPAWNER=0,
    or it cannot start) each shim is its own interpreter, forked and exec'd here."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.waiting: subprocess.Popen | None = None  # the compiled shim's next, started ahead
        self.enabled = os.environ.get("DICE_LOCAL_SPAWNER", "1") not in ("0", "false", "no")

    def start(self, shim_args: list[str], env: dict[str, str], priority: str = "") -> int:
        """Start a shim with `shim_args` (what follows `shim.py` on its command line) in
        `env`, at CPU `priority`; its pid."""
        if shim_kind() == "go":
            request = json.dumps({"args": ["--priority", str(priority or ""), *shim_args], "env": env}).encode()
            with self.lock:
                for _ in range(2):  # a waiting shim that died (killed from outside) is replaced once
                    proc, self.waiting = self.waiting, None
                    if proc is None or proc.poll() is not None:
                        proc = self._waiting_shim()
                    CHILDREN[proc.pid] = proc
                    try:
                        proc.stdin.write(request)
                        proc.stdin.close()
                    except OSError:
                        continue
                    try:  # the next start's, prepared meanwhile; if it cannot start, the next start tries
                        self.waiting = self._waiting_shim()
                    except OSError:
                        self.waiting = None
                    return proc.pid  # it has its request: whatever happens, this job runs
            raise OSError(f"{SHIM_PROGRAM} --wait does not take requests")
        if self.waiting is not None:  # switched to the Python shim (DICE_LOCAL_SHIM=python): let it go
            with self.lock:
                self._close_waiting()
        if self.enabled:
            request = json.dumps({"shim": shim_args, "env": env, "priority": priority}).encode()
            with self.lock:
                for _ in range(2):  # a starter that died is replaced once
                    answer = self._ask(request)
                    if answer is not None:
                        if "error" in answer:
                            raise OSError(answer["error"])
                        return int(answer["pid"])
        argv = [*priority_prefix(priority), sys.executable, "-S", SHIM, *shim_args]
        popen = subprocess.Popen(
            argv, env=env, cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True,
        )
        CHILDREN[popen.pid] = popen
        return popen.pid

    def _waiting_shim(self) -> subprocess.Popen:
        """The compiled shim, started ahead of its request (agent/gorunner/prepared.go): a vfork
        and exec (no preexec function), nothing inherited but the pipe its request comes on and
        /dev/null; its environment the Go runtime's settings only (the command's comes with the
        request). It makes its own session first thing: setsid() between the vfork and the exec
        kept this thread waiting for the exec 1-7 ms a start at times (the kernel makes each new
        session a scheduling group), on the path every start of a burst takes in turn."""
        return subprocess.Popen(
            [SHIM_PROGRAM, "--wait"], env=GO_ENV, cwd="/", stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, close_fds=True,
        )

    def _ask(self, request: bytes) -> dict | None:
        try:
            if self.proc is None or self.proc.poll() is not None:
                # Nothing of the console's environment: the server and the shims forked from it
                # get each request's own (spawner.py); no descriptor but the two pipes.
                self.proc = subprocess.Popen(
                    [sys.executable, "-S", SPAWNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL, cwd="/", close_fds=True,
                    env={"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")},
                )
            self.proc.stdin.write(struct.pack(">I", len(request)) + request)
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except OSError:
            line = b""
        if not line:
            self.close()
            return None
        return json.loads(line)

    def _close_waiting(self) -> None:
        waiting, self.waiting = self.waiting, None
        if waiting is not None:  # the end of its input without a request: it exits
            with contextlib.suppress(OSError):
                waiting.stdin.close()
            CHILDREN[waiting.pid] = waiting

    def close(self) -> None:
        self._close_waiting()
        proc, self.proc = self.proc, None
        if proc is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(2)
            with contextlib.suppress(OSError):
                proc.stdout.close()


STARTER = Starter()


def spawn(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: str,
    log: Path,
    run_prefix: Path,
    mem_mib: int = 0,
    user: str = "",
    log_max_bytes: int,
    log_keep: int,
    priority: str = "",
    sandbox: dict | None = None,
    claim: str = "",
) -> dict[str, Any]:
    """Start argv under a shim in its own session; returns the record that identifies it.
    `priority` lowers the CPU priority of the shim and everything it starts: "idle" (Linux
    SCHED_IDLE: runs only on CPU time nothing else wants) or a nice value "1".."19". The
    util-linux `chrt` or coreutils `nice` execs into the shim, so the pid is the shim's.
    With `sandbox` (sandbox.Sandboxes.spec) the command runs in a sandbox of its own (jail.py).
    With `claim` (a path unique to this start) the shim takes the start first thing by creating
    that file, unless it exists (see shim.claim): what tells a start that reached its shim from
    one given up."""
    log.parent.mkdir(parents=True, exist_ok=True)
    run_prefix.parent.mkdir(parents=True, exist_ok=True)
    pidfile, exitfile = f"{run_prefix}.pid", f"{run_prefix}.exit"
    for stale in (pidfile, exitfile):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stale)
    shim = [
        "--log", str(log), "--pidfile", pidfile, "--exitfile", exitfile,
        "--max-bytes", str(log_max_bytes), "--keep", str(log_keep), "--mem-mib", str(mem_mib),
        "--user", user, "--cwd", cwd,
        *(["--sandbox", write_spec(f"{run_prefix}.sandbox.json", sandbox)] if sandbox else []),
        *(["--claim", claim] if claim else []), "--", *argv,
    ]
    priority_prefix(priority)  # a bad value is refused here, whichever way the shim starts
    # Read before the start: a waiting shim may have run a short command to its end (its exit
    # file's time) before start() returns, which also starts the next waiting shim.
    started = time.time()
    pid = STARTER.start(shim, env, priority)
    return {
        "pid": pid,
        "start_time": proc_start_time(pid),
        "pidfile": pidfile,
        "exitfile": exitfile,
        "started": started,
    }


class Supervisor:
    """Owns the live side of every runtime under one root. `runtimes` maps namespace to the
    runtime's state dict (as saved in state.json); the executor edits desired state under
    `lock`, the loop makes it so."""

    def __init__(self, owner, clock: Callable[[], float]) -> None:
        self.owner = owner  # the LocalExecutor: paths, events, jobs, cron
        self.clock = clock
        self.lock = threading.RLock()
        self.runtimes: dict[str, dict] = {}
        self.proxies: dict[tuple[str, str, int], FrontProxy] = {}
        self.stopping: list[dict] = []  # {pid, start_time, pidfile, deadline}
        self.probes: dict[tuple[str, str, int], Future] = {}
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dice-local-probe")
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._swept = 0.0

    # ---- loop -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="dice-local-supervisor", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for proxy in self.proxies.values():
            proxy.close()
        self.proxies.clear()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # keep supervising whatever one pass hit
                self.owner.event("", "Warning", "SupervisorError", f"{exc.__class__.__name__}: {exc}", "")
            self.wake.wait(TICK)
            self.wake.clear()

    def tick(self) -> None:
        """One supervision pass over every runtime, job and pending stop."""
        _reap()  # polls only our own children: no lock needed
        with self.lock:
            self._escalate_stops()
            for ns, rt in list(self.runtimes.items()):
                before = json.dumps(rt, sort_keys=True, default=str)
                for unit in list(rt["units"].values()):
                    self._supervise_unit(ns, rt, unit)
                self._feed_proxies(ns, rt)
                self.owner.fire_cron(ns, rt)
                if json.dumps(rt, sort_keys=True, default=str) != before:
                    self.owner.save_runtime(ns)
        self.owner.supervise_jobs()  # takes the lock itself, only to record what changed
        if time.monotonic() - self._swept > SWEEP_EVERY:
            self._swept = time.monotonic()
            self.owner.sandboxes.sweep()

    # ---- stopping ---------------------------------------------------------------------------

    def stop_async(self, rec: dict | None, sig: int = signal.SIGTERM) -> None:
        """Ask a shim to stop (it forwards the signal to its child); SIGKILL follows after grace."""
        if rec and rec.get("pid") and alive(rec["pid"], rec.get("start_time")):
            signal_pid(rec["pid"], sig)
            self.stopping.append(
                {"pid": rec["pid"], "start_time": rec.get("start_time"), "pidfile": rec.get("pidfile"),
                 "deadline": time.time() + STOP_GRACE}
            )

    def _escalate_stops(self) -> None:
        keep = []
        for item in self.stopping:
            if not alive(item["pid"], item["start_time"]):
                continue
            if time.time() > item["deadline"]:
                kill_all(item["pid"], item.get("pidfile"))
            keep.append(item)
        self.stopping = keep

    # ---- one unit (a service or an addon) ----------------------------------------------------

    def _supervise_unit(self, ns: str, rt: dict, unit: dict) -> None:
        slots: dict[str, dict] = unit.setdefault("slots", {})
        desired = unit["replicas"]
        for key in sorted(slots, key=int):
            if int(key) >= desired:
                slot = slots.pop(key)
                for which in ("current", "next"):
                    if slot.get(which):
                        self.stop_async(slot[which], unit.get("stop_signal", signal.SIGTERM))
                self.owner.event(ns, "Normal", "Stopped", f"replica {self._name(unit, key)} stopped (scaled down)",
                                 self._name(unit, key))
        rolling = any(slot.get("next") for slot in slots.values())
        for index in range(desired):
            key = str(index)
            slot = slots.setdefault(key, {"current": None, "next": None, "restarts": 0, "failures": 0,
                                          "backoff_until": 0, "last_exit": "", "waiting": ""})
            rolling = self._supervise_slot(ns, rt, unit, key, slot, rolling)

    def _name(self, unit: dict, key: str) -> str:
        return f"{unit['name']}-{key}"

    def _deps_waiting(self, rt: dict, unit: dict) -> list[str]:
        waiting = []
        for dep in unit.get("depends_on", []):
            other = rt["units"].get(dep)
            if other is None or other["replicas"] == 0:
                continue
            if not any((s.get("current") or {}).get("ready") for s in other.get("slots", {}).values()):
                waiting.append(dep)
        return waiting

    def _supervise_slot(self, ns: str, rt: dict, unit: dict, key: str, slot: dict, rolling: bool) -> bool:
        name = self._name(unit, key)
        now = time.time()
        cur = slot.get("current")
        if cur and not alive(cur["pid"], cur.get("start_time")):
            info = read_json(Path(cur["exitfile"]))
            slot["last_exit"] = exit_text(info)
            slot["last_exit_code"] = (info or {}).get("code")
            ran = now - cur["started"]
            slot["failures"] = 1 if ran > STABLE_AFTER else slot["failures"] + 1
            slot["restarts"] += 1
            delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (slot["failures"] - 1))
            slot["backoff_until"] = now + delay
            slot["current"] = cur = None
            self.owner.event(ns, "Warning", "Exited", f"{name} {slot['last_exit']}; restarting in {delay:g}s", name)
        if cur is None:
            if not slot["restarts"]:
                waiting = self._deps_waiting(rt, unit)
                if waiting:
                    if slot.get("waiting") != ",".join(waiting):
                        self.owner.event(ns, "Normal", "Waiting", f"{name} waits for {', '.join(waiting)}", name)
                    slot["waiting"] = ",".join(waiting)
                    return rolling
            slot["waiting"] = ""
            if now >= slot["backoff_until"]:
                slot["current"] = self._start(ns, rt, unit, name)
                reason = "Restarted" if slot["restarts"] else "Started"
                self.owner.event(ns, "Normal", reason, f"{name} started (pid {slot['current']['pid']})", name)
            return rolling
        self._probe(ns, unit, key, cur, "current")
        if cur.get("ready") and now - cur["started"] > STABLE_AFTER and slot["failures"]:
            slot["failures"] = 0
        # Rolling replacement: one slot of the unit at a time, the new replica first.
        stale = cur.get("hash") != unit["hash"] or cur.get("token") != unit.get("token", 0)
        nxt = slot.get("next")
        if nxt and not alive(nxt["pid"], nxt.get("start_time")):
            info = read_json(Path(nxt["exitfile"]))
            self.owner.event(ns, "Warning", "RolloutFailed", f"new {name} {exit_text(info)}; keeping the old one", name)
            slot["next"] = nxt = None
            slot["failures"] += 1
            slot["backoff_until"] = now + min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (slot["failures"] - 1))
            slot["last_exit"] = exit_text(info)
            return rolling
        if nxt:
            self._probe(ns, unit, key, nxt, "next")
            if nxt.get("ready"):
                self.stop_async(cur, unit.get("stop_signal", signal.SIGTERM))
                slot["current"], slot["next"] = nxt, None
                self.owner.event(ns, "Normal", "Replaced", f"{name} replaced by pid {nxt['pid']}", name)
            return True
        if stale and not rolling and now >= slot["backoff_until"]:
            if unit["kind"] == "addon":  # one data directory: stop the old one first
                self.stop_async(cur, unit.get("stop_signal", signal.SIGTERM))
                slot["current"] = None
                return True
            slot["next"] = self._start(ns, rt, unit, name)
            self.owner.event(ns, "Normal", "Rolling", f"starting a new {name} (pid {slot['next']['pid']})", name)
            return True
        return rolling

    def _start(self, ns: str, rt: dict, unit: dict, name: str) -> dict:
        if unit.get("fixed_ports"):
            ports = list(unit["fixed_ports"])
        else:
            avoid = self.owner.ports.reserved()
            ports = []
            for _ in unit.get("declared_ports", []):
                port = ephemeral_port(avoid)
                avoid.add(port)
                ports.append(port)
        env = {**base_env(), **unit["env"]}
        if unit.get("mask"):  # secret values its shim masks in its log (shim.py); not the process's
            env["DICE_MASK"] = json.dumps(unit["mask"])
            # and their forms, as the compiled shim masks them (it does not compute them itself)
            env["DICE_MASK_FORMS"] = json.dumps(mask_forms(unit["mask"]))
        if ports and unit["kind"] == "service":
            env.update({"PORT": str(ports[0]), "SELF_PORT": str(ports[0]),
                        "SELF_URL": f"http://127.0.0.1:{ports[0]}"})
            env.update({f"PORT{i}": str(p) for i, p in enumerate(ports)})
        seq = unit.get("seq", 0) + 1
        unit["seq"] = seq
        rt_dir = self.owner.runtime_dir(ns)
        try:
            rec = spawn(
                unit["argv"], env=env, cwd=unit["cwd"], log=rt_dir / "logs" / f"{name}.log",
                run_prefix=rt_dir / "run" / f"{name}-{seq}", mem_mib=unit.get("mem_mib", 0),
                user=unit.get("user", ""), log_max_bytes=self.owner.log_max_bytes, log_keep=self.owner.log_keep,
                sandbox=self.owner.unit_sandbox(unit, name),
            )
        except OSError as exc:  # the shim itself could not start: count it as a crash
            rec = {"pid": 0, "start_time": None, "pidfile": "", "exitfile": "", "started": time.time()}
            self.owner.event(ns, "Warning", "FailedStart", f"{name}: {exc}", name)
        rec.update({"ports": ports, "hash": unit["hash"], "token": unit.get("token", 0), "ready": False,
                    "probe_failures": 0, "probe_message": "", "last_probe": 0.0, "ever_ready": False, "seq": seq})
        return rec

    def _probe(self, ns: str, unit: dict, key: str, rec: dict, which: str) -> None:
        """Collect a finished probe and start the next one when due (probes run in a pool)."""
        probe = health.Probe(**unit["probe"])
        fkey = (ns, unit["name"], rec["pid"])
        future = self.probes.get(fkey)
        name = self._name(unit, key)
        if future is not None and future.done():
            self.probes.pop(fkey)
            try:
                ok, message = future.result()
            except Exception as exc:  # a probe bug must not stop supervision
                ok, message = False, str(exc)
            rec["probe_message"] = message
            if ok and probe.kind == "none" and time.time() - rec["started"] < health.UP_WITHOUT_CHECK:
                ok = None  # nothing to check: ready once it has stayed up a moment, as minReadySeconds
            if ok is None:
                pass
            elif ok:
                rec["probe_failures"] = 0
                if not rec["ready"]:
                    rec["ready"] = rec["ever_ready"] = True
                    self.owner.event(ns, "Normal", "Ready", f"{name} is ready ({message})", name)
            else:
                rec["probe_failures"] += 1
                if rec["ready"] and rec["probe_failures"] >= health.FAILURE_THRESHOLD:
                    rec["ready"] = False
                    rec["unready_since"] = time.time()
                    self.owner.event(ns, "Warning", "NotReady", f"{name} failed its health check: {message}", name)
            since = rec["started"] if not rec["ever_ready"] else rec.get("unready_since", time.time())
            if not rec["ready"] and not rec.get("killing") and time.time() - since > probe.duration:
                self.owner.event(ns, "Warning", "Unhealthy",
                                 f"{name} not healthy after {probe.duration}s ({message}); restarting", name)
                self.stop_async(rec, unit.get("stop_signal", signal.SIGTERM))
                rec["killing"] = True
        if fkey not in self.probes and time.time() - rec["last_probe"] >= health.PROBE_PERIOD * (
            0.25 if not rec["ready"] else 1
        ):
            rec["last_probe"] = time.time()
            env = {**base_env(), **unit["env"]}
            wrap = None
            if probe.kind == "exec" and unit.get("sandbox"):  # tenant code: in a sandbox like the replica's
                spec = write_spec(str(self.owner.runtime_dir(ns) / "run" / f"{name}-probe.sandbox.json"),
                                  self.owner.unit_sandbox(unit, name))
                wrap = foreground_argv(spec, ["/bin/sh", "-c", probe.command], unit["cwd"])
            self.probes[fkey] = self.pool.submit(health.check, probe, rec["ports"], unit["cwd"], env, wrap)

    # ---- front proxies ---------------------------------------------------------------------

    def _feed_proxies(self, ns: str, rt: dict) -> None:
        for unit in rt["units"].values():
            for index, front in enumerate(unit.get("front_ports", [])):
                pkey = (ns, unit["name"], index)
                proxy = self.proxies.get(pkey)
                if proxy is None or proxy.port != front:
                    if proxy is not None:
                        proxy.close()
                    try:
                        proxy = self.proxies[pkey] = FrontProxy(f"{unit['name']}:{index}", front)
                    except OSError as exc:
                        self.proxies.pop(pkey, None)
                        if not unit.get("front_error"):
                            self.owner.event(ns, "Warning", "FrontPortBusy",
                                             f"front port {front} of {unit['name']}: {exc}", unit["name"])
                        unit["front_error"] = str(exc)
                        continue
                    unit.pop("front_error", None)
                backends = []
                for slot in unit.get("slots", {}).values():
                    for which in ("current", "next"):
                        rec = slot.get(which)
                        if rec and rec.get("ready") and index < len(rec.get("ports", [])):
                            backends.append(rec["ports"][index])
                if backends != proxy.backends:
                    proxy.set_backends(backends)

    def close_proxies(self, ns: str) -> None:
        for pkey in [k for k in self.proxies if k[0] == ns]:
            self.proxies.pop(pkey).close()
