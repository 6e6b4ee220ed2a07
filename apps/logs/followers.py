"""Runtime logs: one follower per (runtime, service) in this process, shared by its subscribers.

Decision: runtime logs are not persisted by the console. The executor keeps them (local: the
shims' rotated files; Kubernetes: the pod log API), and the follower numbers the lines per
replica as they stream; a subscriber resumes with the last number it saw for each replica and
gets the rest from the follower's ring of recent lines, then live lines, with no duplicate.

The follower reads Executor.logs(follow=True); when that iterator ends (every followed pod
ended, e.g. a rolling restart or a crash loop) it opens it again after a moment, so new pods and
restarted containers are followed too. Lines already seen are recognised by (timestamp, number)
per replica and skipped. It also polls the service's events. It stops when its last subscriber
leaves (a thread blocked in an idle executor stream ends at its next line)."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator

from scheduler.base import Event, LogLine

log = logging.getLogger(__name__)

RING_LINES = 20000  # recent lines kept for resuming subscribers
TAIL = 500  # lines per replica read when a follower starts
REOPEN_AFTER = 1.0  # seconds before an ended log stream is opened again
EVENTS_EVERY = 2.0
FLUSH = 0.05

Deliver = Callable[[str, list], None]  # ("lines" | "events", items)


class ServiceFollower:
    def __init__(self, key: tuple[int, str], open_logs: Callable[[int | None], Iterator[LogLine]],
                 list_events: Callable[[], list[Event]]):
        self.key = key
        self.open_logs = open_logs
        self.list_events = list_events
        self.lock = threading.Lock()
        self.ring: deque[list] = deque(maxlen=RING_LINES)
        self.subscribers: dict[int, Deliver] = {}
        self.numbers: dict[str, int] = {}  # replica -> our last number
        self.marks: dict[str, tuple[float, int]] = {}  # replica -> (timestamp, source number) last taken
        self.events_seen: set[tuple] = set()
        self.events: deque[dict] = deque(maxlen=50)
        self.batch: list[list] = []  # taken, not yet delivered
        self.stopped = threading.Event()
        self._next_id = 0

    def start(self) -> None:
        threading.Thread(target=self._follow, name=f"dice-logs-{self.key}", daemon=True).start()
        threading.Thread(target=self._poll_events, name=f"dice-events-{self.key}", daemon=True).start()
        threading.Thread(target=self._flush, name=f"dice-logs-flush-{self.key}", daemon=True).start()

    def subscribe(self, deliver: Deliver, after: dict[str, int]) -> tuple[int, list, list]:
        """Register; returns (id, the ring's lines after `after` per replica, recent events) atomically."""
        with self.lock:
            self._next_id += 1
            self.subscribers[self._next_id] = deliver
            pending = {id(line) for line in self.batch}  # delivered to everyone with the next flush
            backlog = [line for line in self.ring if line[0] > after.get(line[4], 0) and id(line) not in pending]
            return self._next_id, backlog, list(self.events)

    def unsubscribe(self, sub_id: int) -> bool:
        """True when that was the last subscriber (the follower is then stopped)."""
        with self.lock:
            self.subscribers.pop(sub_id, None)
            if not self.subscribers:
                self.stopped.set()
                return True
            return False

    def _take(self, line: LogLine) -> list | None:
        mark = self.marks.get(line.source)
        if mark is not None and (line.timestamp, line.number) <= mark:
            return None
        self.marks[line.source] = (line.timestamp, line.number)
        number = self.numbers.get(line.source, 0) + 1
        self.numbers[line.source] = number
        return [number, line.timestamp, line.stream, line.text, line.source]

    def _publish(self, kind: str, items: list) -> None:
        for deliver in list(self.subscribers.values()):
            try:
                deliver(kind, items)
            except Exception:  # a closed loop: that subscriber is leaving anyway
                log.debug("deliver failed", exc_info=True)

    def _follow(self) -> None:
        first = True
        while not self.stopped.is_set():
            try:
                for line in self.open_logs(TAIL if first else None):
                    if self.stopped.is_set():
                        return
                    with self.lock:
                        taken = self._take(line)
                        if taken is not None:
                            self.ring.append(taken)
                            self.batch.append(taken)
            except Exception as exc:
                log.warning("following %s: %s", self.key, exc)
            first = False
            self.stopped.wait(REOPEN_AFTER)

    def _flush(self) -> None:
        """Deliver what the stream brought every FLUSH seconds: one call per burst, not per line."""
        while not self.stopped.wait(FLUSH):
            with self.lock:
                if self.batch:
                    batch, self.batch = self.batch, []
                    self._publish("lines", batch)

    def _poll_events(self) -> None:
        while not self.stopped.is_set():
            try:
                fresh = []
                for ev in sorted(self.list_events(), key=lambda e: e.timestamp):
                    key = (ev.timestamp, ev.type, ev.reason, ev.message, ev.object)
                    if key not in self.events_seen:
                        self.events_seen.add(key)
                        fresh.append({"timestamp": ev.timestamp, "type": ev.type, "reason": ev.reason,
                                      "message": ev.message, "object": ev.object})
                if fresh:
                    with self.lock:
                        self.events.extend(fresh)
                        self._publish("events", fresh)
            except Exception as exc:
                log.debug("events of %s: %s", self.key, exc)
            self.stopped.wait(EVENTS_EVERY)


_lock = threading.Lock()
_followers: dict[tuple[int, str], ServiceFollower] = {}


def follower_for(runtime, service: str) -> ServiceFollower:
    """The running follower of this runtime service, started if there is none."""
    key = (runtime.pk, service)
    with _lock:
        found = _followers.get(key)
        if found is None or found.stopped.is_set():
            found = _followers[key] = ServiceFollower(key, *_sources(runtime, service))
            found.start()
        return found


def leave(follower: ServiceFollower, sub_id: int) -> None:
    with _lock:
        if follower.unsubscribe(sub_id) and _followers.get(follower.key) is follower:
            del _followers[follower.key]


def active() -> list[tuple[int, str]]:
    with _lock:
        return list(_followers)


def _sources(runtime, service: str):
    from apps.clusters.services import cluster_executor
    from apps.deploy.refs import runtime_ref
    from apps.deploy.services import masked_lines, runtime_log_masker

    executor = cluster_executor(runtime.cluster)
    ref = runtime_ref(runtime)
    masker = runtime_log_masker(runtime)  # secret values never reach a viewer (any cluster kind)

    def open_logs(tail: int | None) -> Iterator[LogLine]:
        return masked_lines(executor.logs(ref, service, follow=True, tail=tail), masker)

    def list_events() -> list[Event]:
        return executor.events(ref, service)

    return open_logs, list_events
