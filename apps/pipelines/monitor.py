"""The step monitor: per worker process, a thread that hears agents finish and one that pumps logs.

Agents send a UDP datagram to `address()` when they have written their result; the monitor
collects those steps at once, in its own thread (no polling interval between steps, no trip
through the broker; when that fails, they go to the retried `on_tasks_finished`). Every PASS
seconds its second thread persists the new log lines of running steps (only those whose log
changed, where the cluster can tell) and notices steps that ended without a word (killed, timed
out by the cluster, or reporting to a monitor that died in a restart).

Between passes, where the cluster can say which logs grew (scheduler.base.job_log_watch; local:
inotify on the jobs' folders), the same thread sleeps until a running step writes a line, waits
GATHER for the lines written with it, and stores the new lines of the steps that wrote: a line
waits tens of milliseconds, not up to PASS, and steps that print nothing cost nothing. Each log is
read on from where the last read left it (scheduler.base.job_log_from; local: a byte offset in its
rotating files; steplogs keeps the positions, for the collection at a step's end too), so a pass
costs what the steps wrote since the last one, not their whole logs. Positions live in this
process only: after a restart or a takeover a log is read whole once, its lines filtered by the
task's stored cursor (never stored twice).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import socket
import threading
import time

from django.conf import settings

from apps.pipelines import engine, paths, queue, reference, steplogs, steps
from apps.pipelines.choices import Executor, TaskStatus
from apps.pipelines.models import TaskRun
from dice_console.dbconn import drop_broken_connections
from scheduler.base import START_BACKLOG, job_log_watch

log = logging.getLogger(__name__)

PASS = 0.5  # seconds between liveness checks (and log pumps where the cluster cannot say which logs grew)
SOON = 0.1  # seconds from steps being started (watch()) to the pass that finds them running
GATHER = 0.025  # seconds from the first new line heard to the pump: the lines written with it go along
RESEND_AFTER = 5.0  # seconds before a finished-looking step is reported again
IDLE_AFTER = 60.0  # seconds without running steps after which passes stop until the next watch()
# seconds a collection or a pass waits at most for this process's pending job starts (a wide
# stage's hundred on the local cluster: START_BACKLOG): a start is what steps wait for, a result waits in its file
YIELD_TO_STARTS = 1.0
# After a collection that advanced nothing (a wide stage's steps ending one by one, each round
# ~5 ms of CPU for one step while the rest of the stage is still starting), the collector rests
# REST_AFTER_ROUND times that round's CPU before the next: the steps that end meanwhile are
# collected together, at a fraction of the CPU each. A round that dispatched (a chain's step, a
# stage's last) rests not at all: the next result is collected as it comes.
REST_AFTER_ROUND = 4.0
REST_AT_MOST = 0.05  # seconds: after a big round (a stage's hundred together) the next result waits no longer

_lock = threading.Lock()
_monitor: StepMonitor | None = None


class StepMonitor:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.setblocking(False)
        self.host, self.port = self.sock.getsockname()[:2]
        self._stop = threading.Event()
        self._lock = threading.Lock()  # _reported is shared by the two threads
        self._reported: dict[int, float] = {}
        self._log_marks: dict[int, tuple] = {}  # task -> its job log's mark at the last pump
        # The pass thread's own: the running steps seen by the last pass, by (executor id, job,
        # namespace), and the log watch of each executor that has one (with the executor, so its id stays its own).
        self._running: dict[tuple, tuple] = {}
        self._watches: dict[int, tuple] = {}
        self._wake_r, self._wake_w = os.pipe()  # stop() and pass_soon() wake the pass thread's wait
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._pass_at = float("inf")  # when pass_soon() wants a pass
        self.busy_until = 0.0  # passes touch the database only while steps may be running
        # Two threads: a pass over 100 running steps takes tens of milliseconds, and a datagram
        # that arrives meanwhile must not wait for it (it is the signal a stage's successors wait for).
        self.thread = threading.Thread(target=self._loop, name="dice-step-monitor", daemon=True)
        self.pass_thread = threading.Thread(target=self._pass_loop, name="dice-step-monitor-pass", daemon=True)
        for thread in (self.thread, self.pass_thread):
            thread.dice_monitor = self  # what ensure_started() returns to them, even while stopping

    @property
    def address(self) -> str:
        return f"udp://{self.host}:{self.port}"

    def start(self) -> None:
        self.thread.start()
        self.pass_thread.start()

    def alive(self) -> bool:
        return self.thread.is_alive() and self.pass_thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        self.thread.join(5)
        self.pass_thread.join(5)
        with contextlib.suppress(OSError):
            self.sock.close()
        if not self.pass_thread.is_alive():
            for _, watch in self._watches.values():
                with contextlib.suppress(OSError):
                    watch.close()
            self._watches.clear()
            for fd in (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _loop(self) -> None:
        rest_until = 0.0
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.sock], [], [], 0.1)
            except (OSError, ValueError):
                return
            if ready:
                START_BACKLOG.wait_clear(YIELD_TO_STARTS)
                if rest_until > time.monotonic():  # results arriving meanwhile wait in the socket
                    self._stop.wait(rest_until - time.monotonic())
                spent = time.thread_time()
                advanced = self._receive()
                spent = time.thread_time() - spent
                rest_until = 0.0 if advanced else time.monotonic() + min(REST_AT_MOST, spent * REST_AFTER_ROUND)

    def pass_soon(self) -> None:
        """Steps are being started: a pass within SOON (not at the next PASS) finds them running
        and watches their logs, so their first lines do not wait for it."""
        with self._lock:
            self._pass_at = min(self._pass_at, time.monotonic() + SOON)
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"p")

    def _pass_loop(self) -> None:
        next_pass = time.monotonic() + PASS
        while not self._stop.is_set():
            with self._lock:
                due_at = min(next_pass, self._pass_at)
            changed = self._wait_for_lines(max(0.0, due_at - time.monotonic()))
            if self._stop.is_set():
                return
            with self._lock:
                due = time.monotonic() >= min(next_pass, self._pass_at)
                if due:
                    self._pass_at = float("inf")
            if due:
                next_pass = time.monotonic() + PASS
            if time.monotonic() >= self.busy_until or not (changed or due):
                continue
            START_BACKLOG.wait_clear(YIELD_TO_STARTS)
            try:
                if changed:
                    self._pump_changed(changed)
                if due:
                    self._pass()
            except Exception:
                log.exception("step monitor pass failed")
            finally:
                drop_broken_connections()

    def _wait_for_lines(self, timeout: float) -> set[tuple]:
        """Sleep up to timeout, or until a watched step's log grows; then (after GATHER, so the
        lines written with the first one go along) the running steps whose logs grew, as keys of
        self._running."""
        fds = [self._wake_r, *(watch.fileno() for _, watch in self._watches.values())]
        try:
            ready, _, _ = select.select(fds, [], [], timeout)
        except (OSError, ValueError):  # a watch closed meanwhile: wait as a poller would
            self._stop.wait(timeout)
            return set()
        if not ready:
            return set()
        if self._wake_r in ready:  # stop(), or pass_soon(): the caller looks at which
            with contextlib.suppress(OSError):
                os.read(self._wake_r, 4096)
            return set()
        self._stop.wait(GATHER)
        changed = set()
        for key, (_, watch) in self._watches.items():
            for name, namespace in watch.changed():
                changed.add((key, name, namespace))
        return changed

    def _pump_changed(self, changed: set[tuple]) -> None:
        """Store the new lines of the running steps whose logs the watches say grew (those seen by
        the last pass; a step new since is the next pass's). A step whose result is there is left
        to its collection, as a pass leaves it."""
        talking = []
        for key in changed:
            entry = self._running.get(key)
            if entry is None:
                continue
            executor, run, task, masker = entry
            with self._lock:
                if task.pk in self._reported:
                    continue
            if steps.read_result(task) is not None:
                continue
            try:
                mark = executor.job_log_version(task.job_name, paths.job_namespace(run))
            except Exception as exc:
                log.warning("monitor: task %s: %s", task.pk, exc)
                continue
            talking.append((executor, run, task, masker, mark))
        self._pump(talking)

    def _watch_logs(self, executor, run, task) -> bool:
        """Have the executor's log watch (where it has one) report this step's log; False when it
        cannot yet (a step accepted whose folder its cluster has not made yet)."""
        key = id(executor)
        if key not in self._watches:
            watch = job_log_watch(executor)
            if watch is None:
                return True
            self._watches[key] = (executor, watch)
        watch = self._watches[key][1]
        return watch.watch(task.job_name, paths.job_namespace(run))

    def _forget_watched(self, running: dict[tuple, tuple]) -> None:
        """Stop watching the logs of steps no longer running; close the watches of executors
        without running steps."""
        for key, (_, watch) in list(self._watches.items()):
            kept = 0
            for name, namespace in watch.watched():
                if (key, name, namespace) in running:
                    kept += 1
                else:
                    watch.forget(name, namespace)
            if not kept:
                with contextlib.suppress(OSError):
                    watch.close()
                del self._watches[key]

    def _receive(self) -> bool:
        """The steps of every datagram waiting now are collected together (and their run
        dispatched once): handed to this process's collector when one is collecting (they join its
        next round), else collected here. A message through the broker to a worker thread cost 1
        to 25 ms at each stage's end, while the worker threads were busy or fought for the
        interpreter lock. Datagrams arriving meanwhile wait in the socket for the next call.
        False when what was collected here advanced no run (see REST_AFTER_ROUND)."""
        finished: list[int] = []
        while True:
            try:
                data, _ = self.sock.recvfrom(65536)
            except (BlockingIOError, OSError):
                break
            with contextlib.suppress(ValueError, TypeError, KeyError):
                task_id = int(json.loads(data)["task_run"])
                with self._lock:
                    self._reported[task_id] = time.monotonic()
                if task_id not in finished:
                    finished.append(task_id)
        if not finished or engine.offer_to_collector(finished):
            return True
        try:
            return engine.collect_many(finished)
        except Exception:  # a busy database, a cluster away: the retried task takes them over
            log.warning("collecting steps %s failed; handing them to a worker", finished, exc_info=True)
            queue.send("on_tasks_finished", finished)
            return True
        finally:
            drop_broken_connections()

    def _pump(self, talking: list[tuple]) -> None:
        """The new lines of every step that talked since the last pass, in one transaction (one
        commit and one push hop for all, not one each); one at a time only when that fails. A
        step's log mark moves only once its lines are stored (else the next pass reads it again)."""
        if not talking:
            return
        failed = set()
        try:
            steplogs.pump_all([item[:4] for item in talking])
        except Exception as exc:
            log.warning("monitor: pumping %d logs together: %s; one at a time", len(talking), exc)
            for executor, run, task, masker, _ in talking:
                try:
                    steplogs.pump_logs(executor, run, task, masker)
                except Exception as exc:
                    log.warning("monitor: task %s: %s", task.pk, exc)
                    failed.add(task.pk)
        for *_, task, _, mark in talking:
            if task.pk not in failed:
                self._log_marks[task.pk] = mark

    def _pass(self) -> None:
        running = TaskRun.objects.filter(status=TaskStatus.RUNNING, executor=Executor.CLUSTER).exclude(
            job_name="").select_related("run__application")
        executors: dict[tuple, object] = {}
        maskers: dict[int, object] = {}
        now = time.monotonic()
        alive = set()
        finished: list[int] = []
        talking: list[tuple] = []  # running steps whose logs changed: pumped together below
        pumpable: dict[tuple, tuple] = {}  # what _pump_changed may pump until the next pass
        unwatched = False  # a running step whose log cannot be watched yet: look again SOON
        for task in running:
            self.busy_until = max(self.busy_until, now + IDLE_AFTER)
            alive.add(task.pk)
            run = task.run
            try:
                executor = steps.task_executor(run, task.type, executors)
                done = steps.read_result(task) is not None or steps.job_state(executor, run, task).state.finished
                # A pass reads only the logs that changed since the last one (where the cluster can
                # tell): 100 running steps of a wide stage are otherwise 100 log reads every pass.
                # A finished step's log is the collector's to persist: pumping it here too took the
                # database's write lock from under the collector when a stage ended.
                if not done:
                    if run.pk not in maskers:
                        maskers[run.pk] = reference.project_configs(run.application.project_id)[1]
                    if not self._watch_logs(executor, run, task):
                        unwatched = True
                    pumpable[(id(executor), task.job_name, paths.job_namespace(run))] = (
                        executor, run, task, maskers[run.pk])
                    mark = executor.job_log_version(task.job_name, paths.job_namespace(run))
                    if mark is None or self._log_marks.get(task.pk) != mark:
                        talking.append((executor, run, task, maskers[run.pk], mark))
            except Exception as exc:
                log.warning("monitor: task %s: %s", task.pk, exc)
                continue
            if not done:
                continue
            with self._lock:
                if task.pk not in self._reported:
                    # First seen finished by a pass: its datagram is probably on its way, and two
                    # collections of one step only waste work. Report it at the next pass if not.
                    self._reported[task.pk] = now - RESEND_AFTER + PASS
                elif now - self._reported[task.pk] > RESEND_AFTER:
                    self._reported[task.pk] = now
                    finished.append(task.pk)
        self._pump(talking)
        self._running = pumpable
        self._forget_watched(pumpable)
        if unwatched:
            with self._lock:
                self._pass_at = min(self._pass_at, time.monotonic() + SOON)
        if finished:
            queue.send("on_tasks_finished", finished)
        with self._lock:
            for task_id in [task_id for task_id in self._reported if task_id not in alive]:
                del self._reported[task_id]
        for task_id in [task_id for task_id in self._log_marks if task_id not in alive]:
            del self._log_marks[task_id]
        steplogs.forget_positions(alive)  # a step being collected is still running


def ensure_started() -> StepMonitor:
    """This process's monitor, started if it is not running. A monitor's own threads (collecting
    starts the next steps, which asks for the address) get their monitor, even one being stopped:
    they must neither wait for the stop that waits for them nor start another monitor."""
    global _monitor
    own = getattr(threading.current_thread(), "dice_monitor", None)
    if own is not None:
        return own
    with _lock:
        if _monitor is None or not _monitor.alive():
            if _monitor is not None:  # one of its threads died: stop the other, free the port
                _monitor.stop()
            port = int(getattr(settings, "DICE_PIPELINE_NOTIFY_PORT", 0) or 0)
            _monitor = StepMonitor(port=port)
            _monitor.start()
        return _monitor


def address() -> str:
    return ensure_started().address


def watch(task_id: int) -> None:
    """A step of this task is running: make sure this process watches steps."""
    monitor = ensure_started()
    monitor.busy_until = max(monitor.busy_until, time.monotonic() + IDLE_AFTER)
    monitor.pass_soon()


def stop() -> None:
    """Stop this process's monitor (worker shutdown, tests simulating a crash)."""
    global _monitor
    with _lock:  # its threads finishing a collection meanwhile get their own monitor, without the lock
        if _monitor is not None:
            _monitor.stop()
            _monitor = None
