"""Live delivery of saved lines: after the commit, lines go to the task run's followers, coalesced.

One pusher thread per process merges what the committed batches of a stream brought and sends it
at most every PUSH_INTERVAL seconds, so a producer committing a line at a time still makes at
most 20 messages per second per stream, each with many lines, published through apps.logs.bus
(every stream due in one Redis round trip). The consumer forwards them as they come: a second
rate limit there added up to its own interval to every line.
Nothing here is needed for correctness: a viewer reads what it missed from the database by
line number; pushes only make it fast."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

from django.db import transaction
from django.db.models.signals import post_save

from apps.logs import bus

log = logging.getLogger(__name__)

PUSH_INTERVAL = 0.05  # seconds between two pushes of one stream
MAX_LINES_PER_MESSAGE = 5000


class Pusher:
    """Pending lines per task run, sent by one daemon thread in order of arrival."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._pending: OrderedDict[int, list[list]] = OrderedDict()
        self._ends: set[int] = set()
        self._sent_at: dict[int, float] = {}
        self._thread: threading.Thread | None = None

    def add(self, task_run_id: int, lines: list[list]) -> None:
        with self._lock:
            self._pending.setdefault(task_run_id, []).extend(lines)
            self._ensure_thread()
            self._lock.notify()

    def end(self, task_run_id: int) -> None:
        with self._lock:
            self._pending.setdefault(task_run_id, [])
            self._ends.add(task_run_id)
            self._ensure_thread()
            self._lock.notify()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="dice-log-pusher", daemon=True)
            self._thread.start()

    def _due(self, now: float) -> tuple[list[tuple[int, list, bool]], float | None]:
        due, wait = [], None
        for task_id in list(self._pending):
            ready_at = self._sent_at.get(task_id, 0.0) + PUSH_INTERVAL
            if ready_at <= now:
                ended = task_id in self._ends
                self._ends.discard(task_id)
                due.append((task_id, self._pending.pop(task_id), ended))
                self._sent_at[task_id] = now
            else:
                wait = ready_at - now if wait is None else min(wait, ready_at - now)
        if len(self._sent_at) > 10000:
            self._sent_at = {k: v for k, v in self._sent_at.items() if now - v < 60}
        return due, wait

    def _run(self) -> None:
        while True:
            with self._lock:
                due, wait = self._due(time.monotonic())
                while not due:
                    self._lock.wait(timeout=wait if wait is not None else 30)
                    due, wait = self._due(time.monotonic())
            bus.publish([message for task_id, lines, ended in due for message in self._messages(task_id, lines, ended)])

    @staticmethod
    def _messages(task_id: int, lines: list[list], ended: bool) -> list[tuple[int, list, bool]]:
        """Every stream due is published at once (one round trip to Redis, not one per stream)."""
        out = [(task_id, lines[start:start + MAX_LINES_PER_MESSAGE], False)
               for start in range(0, len(lines), MAX_LINES_PER_MESSAGE)]
        if ended:
            out.append((task_id, [], True))
        return out


pusher = Pusher()


def lines_saved(task_run_id: int, lines: list[list]) -> None:
    """Push these [number, timestamp, stream, text] lines once the surrounding transaction commits."""
    if lines:
        transaction.on_commit(lambda: pusher.add(task_run_id, lines))


def _on_transition(sender, instance, created, **kwargs) -> None:
    """A task run finished: tell its viewers, after the commit. The message carries no number (the
    consumer reads the last line number with the rest), so finishing costs the producer no query."""
    from apps.pipelines.choices import FINISHED_TASK

    if created and instance.to_status in FINISHED_TASK:
        task_id = instance.task_run_id
        transaction.on_commit(lambda: pusher.end(task_id))


def connect() -> None:
    from apps.pipelines.models import TaskRunTransition

    post_save.connect(_on_transition, sender=TaskRunTransition, weak=False, dispatch_uid="dice-logs-task-finished")
