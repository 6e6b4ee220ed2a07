"""Waiting in tests for something that happens in another process (a Spark or Flink cluster)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.2):
    """Poll predicate() until it is truthy and return it; fail naming `what` and the last value
    after timeout seconds. Exceptions from predicate are failures, not "not yet"."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
