"""Where step agents report that they have finished: the address of this process's step monitor,
and keeping the monitor watching while steps run.

The engine asks here; the monitor (apps.pipelines.monitor, which collects through the engine) is
plugged in when the app is ready (apps.pipelines.apps), so neither imports the other's caller."""

from __future__ import annotations

from collections.abc import Callable

_address: Callable[[], str | None] = lambda: None  # noqa: E731 - until the monitor is plugged in
_watch: Callable[[int], None] = lambda task_id: None  # noqa: E731


def plug(address: Callable[[], str | None], watch: Callable[[int], None]) -> None:
    global _address, _watch
    _address, _watch = address, watch


def address() -> str | None:
    """The address agents notify (`udp://host:port`), the monitor started if it was not."""
    return _address()


def watch(task_id: int) -> None:
    """A step of this task is running: make sure this process watches steps."""
    _watch(task_id)
