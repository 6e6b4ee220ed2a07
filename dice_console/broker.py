"""The standalone broker: kombu's in-memory transport, woken by its messages instead of polling.

kombu's memory transport makes a waiting consumer sleep `polling_interval` between looks at its
queues. Short, it costs the console's CPU (at 5 ms, a tenth of the interpreter lock while a wide
pipeline runs); long, every hop through the broker waits for it (a pipeline step's end, its
collection and its successors' start are three hops). Here a consumer waits on a condition that
every put, ack, reject and prefetch change notifies, and looks again at least every FALLBACK
seconds in case something else freed a slot.

URL: `dice-memory://` (registered as a kombu transport alias when this module is imported).
"""

from __future__ import annotations

import threading
import time
from queue import Empty

from kombu.transport import TRANSPORT_ALIASES, memory

FALLBACK = 0.1  # seconds: the longest a consumer sleeps without being told of a change

_changed = threading.Condition()
_changes = 0  # bumped (under _changed) by every change a waiting consumer may care about


def _notify() -> None:
    global _changes
    with _changed:
        _changes += 1
        _changed.notify_all()


class Channel(memory.Channel):
    def _put(self, queue, message, **kwargs):
        super()._put(queue, message, **kwargs)
        _notify()

    def _put_fanout(self, exchange, message, routing_key=None, **kwargs):
        super()._put_fanout(exchange, message, routing_key, **kwargs)
        _notify()

    def basic_ack(self, delivery_tag, multiple=False):
        super().basic_ack(delivery_tag, multiple)
        _notify()  # a prefetch slot is free

    def basic_reject(self, delivery_tag, requeue=False):
        super().basic_reject(delivery_tag, requeue)
        _notify()

    def basic_qos(self, prefetch_size=0, prefetch_count=0, apply_global=False):
        super().basic_qos(prefetch_size, prefetch_count, apply_global)
        _notify()


class Transport(memory.Transport):
    Channel = Channel
    driver_name = "dice-memory"

    def drain_events(self, connection, timeout=None):
        """Deliver one message; wait for a change (not a fixed sleep) while there is none."""
        deadline = None if timeout is None else time.monotonic() + timeout
        get = self.cycle.get
        while True:
            with _changed:
                seen = _changes
            try:
                get(self._deliver, timeout=timeout)
                return
            except Empty:
                pass
            wait = FALLBACK  # not polling_interval: nothing here needs polling
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError()
                wait = min(wait, left)
            with _changed:
                if _changes == seen:
                    _changed.wait(wait)


TRANSPORT_ALIASES.setdefault("dice-memory", "dice_console.broker:Transport")
