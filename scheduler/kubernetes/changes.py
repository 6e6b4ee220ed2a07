"""Status changes of a runtime's namespace, heard through watches (scheduler.base.StatusChanges).

One watch per kind that makes up a runtime's status (Deployments, DaemonSets, StatefulSets, pods,
events, and the addons' custom resources): each event wakes the follower, which then reads the
status once for however many events arrived. A watch that ends (the server's timeout, a dropped
connection) is opened again; its first events are the objects as they are now, so a change made
while it was away still wakes the follower."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

from kubernetes import watch

log = logging.getLogger(__name__)

WATCH_SECONDS = 120  # the server ends each watch after this long; it is opened again
RETRY_SECONDS = 0.5  # pause after a failed watch before the next attempt


class NamespaceChanges:
    """Wakes wait() on every event of the given list calls' watches until close()."""

    def __init__(self, listers: list[tuple[Callable, tuple]], name: str = ""):
        self._cond = threading.Condition()
        self._count = 0
        self._seen = 0
        self._stop = threading.Event()
        self._watches: list[watch.Watch] = []
        self._lock = threading.Lock()
        for lister, args in listers:
            threading.Thread(target=self._run, args=(lister, args), daemon=True,
                             name=f"dice-status-watch-{name}").start()

    def _bump(self) -> None:
        with self._cond:
            self._count += 1
            self._cond.notify_all()

    def _run(self, lister: Callable, args: tuple) -> None:
        while not self._stop.is_set():
            w = watch.Watch()
            with self._lock:
                if self._stop.is_set():
                    return
                self._watches.append(w)
            try:
                for _ in w.stream(lister, *args, timeout_seconds=WATCH_SECONDS):
                    if self._stop.is_set():
                        return
                    self._bump()
            except Exception as exc:  # a dropped connection, a kind gone away: try again shortly
                if self._stop.is_set():
                    return
                log.debug("status watch %s failed: %s", getattr(lister, "__name__", lister), exc)
                self._stop.wait(RETRY_SECONDS)
            finally:
                with self._lock, contextlib.suppress(ValueError):
                    self._watches.remove(w)
            self._bump()  # what happened while no watch was open is read again

    def wait(self, timeout: float) -> bool:
        with self._cond:
            if self._count == self._seen:
                self._cond.wait(max(0.0, timeout))
            changed = self._count != self._seen
            self._seen = self._count
            return changed

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            watches = list(self._watches)
        for w in watches:
            w.stop()
            response = getattr(w, "_resp", None)  # unblock the read now, not at the next event
            if response is not None:
                with contextlib.suppress(Exception):
                    response.shutdown() if hasattr(response, "shutdown") else response.close()
        with self._cond:
            self._cond.notify_all()
