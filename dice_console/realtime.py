"""Push messages to Channels groups from any thread, including the embedded worker's."""

from __future__ import annotations

import asyncio
import logging
import threading

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)

# In standalone mode the ASGI server registers its loop here. InMemoryChannelLayer only
# delivers group_send made on the server's own loop, so sends from worker threads are
# scheduled onto it instead of running on a private loop.
_server_loop: asyncio.AbstractEventLoop | None = None


# Threads without a loop send on one private loop each, kept: async_to_sync started a thread and
# an event loop for every send (~2 ms), and a finished pipeline step sends two.
_thread = threading.local()


def _own_loop() -> asyncio.AbstractEventLoop:
    loop = getattr(_thread, "loop", None)
    if loop is None or loop.is_closed():
        loop = _thread.loop = asyncio.new_event_loop()
    return loop


def register_server_loop(loop: asyncio.AbstractEventLoop | None) -> None:
    global _server_loop
    _server_loop = loop


def group_send(group: str, message: dict) -> None:
    """Send to a group; never raises, a lost push must not fail the work that caused it."""
    group_send_many([(group, message)])


async def _send_all(layer, messages: list[tuple[str, dict]]) -> None:
    for group, message in messages:  # in order: one group's messages must arrive as sent
        await layer.group_send(group, message)


def group_send_many(messages: list[tuple[str, dict]]) -> None:
    """Send (group, message) pairs in order, in one hop to the loop that sends them: the log pusher
    sends one message per stream every 50 ms, and a hop to the server's loop (waiting behind
    whatever it runs) per message made 50 streams queue behind each other. Never raises."""
    layer = get_channel_layer()
    if layer is None or not messages:
        return
    try:
        loop = _server_loop
        if loop is not None and loop.is_running():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                loop.create_task(_send_all(layer, messages))
            else:
                asyncio.run_coroutine_threadsafe(_send_all(layer, messages), loop).result(timeout=5)
        else:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                _own_loop().run_until_complete(_send_all(layer, messages))
            else:
                # A loop runs in this thread (async code, or a test's browser driver): async_to_sync
                # refuses to block it, so send from a short-lived thread of its own.
                sender = threading.Thread(target=async_to_sync(_send_all), args=(layer, messages))
                sender.start()
                sender.join(timeout=5)
    except Exception:  # pragma: no cover - logged, not raised
        log.exception("group_send to %s failed", ", ".join(sorted({group for group, _ in messages})))
