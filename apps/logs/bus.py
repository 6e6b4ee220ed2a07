"""How pushed task-log lines reach the /ws/logs/ consumers that follow them, without the channel layer.

Through Channels' Redis layer every push of every stream was one message per following socket,
and each cost about eight Redis round trips (four to send, four to receive), the receiving ones
one at a time per web process: at 50 streams pushed every 100 ms the web process's receive loop
could not keep up, messages queued for seconds and, past the layer's capacity of 100, were
dropped (bench/bench_logs.py --trace: "received" held the tail, p99 2-6 s at 13k lines/s).

Here a web process subscribes once per followed task (Redis pub/sub, one connection per event
loop) and fans each message out to its local followers itself; a producer publishes every stream
due in one pipelined round trip. Without Redis (standalone) the lines are handed to the loops
that follow them directly. Nothing here is needed for correctness: a consumer reads what it
missed from the database by line number (a gap in the numbers, or its watchdog)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from urllib.parse import urlparse

from django.conf import settings

log = logging.getLogger(__name__)

# (task id, lines, ended) -> None, called on the follower's loop
Deliver = Callable[[int, list, bool], None]


def _prefix() -> str:
    """Pub/sub channels are one namespace per Redis server, whatever the database number: the
    number is part of the name, so consoles sharing a server on different databases stay apart."""
    url = urlparse(settings.REDIS_URL)
    db = (url.path or "/0").lstrip("/") or "0"
    return f"dice:{db}:logs:"


def channel_name(task_id: int) -> str:
    return f"{_prefix()}{task_id}"


class Hub:
    """The followers of one event loop: task id -> {key: deliver}. With Redis, one pub/sub
    connection of this loop, subscribed once to every task's channel by pattern, carries them all;
    a message for a task nobody here follows is dropped by its channel name, before decoding. (A
    subscription per task made every follow a command on a connection another task was reading.)"""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.followers: dict[int, dict[object, Deliver]] = {}
        self._redis = None
        self._pubsub = None
        self._reader: asyncio.Task | None = None
        self._subscribed: asyncio.Future | None = None
        self._lock = asyncio.Lock()

    # ---- following ---------------------------------------------------------------------------

    async def follow(self, task_id: int, key: object, deliver: Deliver) -> None:
        """From now on, pushed lines of the task reach `deliver`. Returns once that holds (with
        Redis: the subscription is confirmed), so lines read from the database after it and lines
        pushed after it leave no gap between them."""
        self.followers.setdefault(task_id, {})[key] = deliver
        if settings.REDIS_URL:
            try:
                await self._subscribe()
            except Exception:  # Redis away: the consumer's watchdog reads from the database
                log.warning("log bus: subscribing failed", exc_info=True)

    async def unfollow(self, task_id: int, key: object) -> None:
        followers = self.followers.get(task_id)
        if followers is None:
            return
        followers.pop(key, None)
        if not followers:
            del self.followers[task_id]

    async def _subscribe(self) -> None:
        from redis import asyncio as aioredis

        async with self._lock:
            if self._subscribed is None or (self._subscribed.done() and self._subscribed.exception() is not None):
                if self._pubsub is None:
                    self._redis = aioredis.Redis.from_url(settings.REDIS_URL)
                    self._pubsub = self._redis.pubsub()
                self._subscribed = self.loop.create_future()
                await self._pubsub.psubscribe(_prefix() + "*")
                if self._reader is None or self._reader.done():
                    self._reader = self.loop.create_task(self._read())
            subscribed = self._subscribed
        await asyncio.wait_for(asyncio.shield(subscribed), 5)

    async def _read(self) -> None:
        prefix = _prefix()
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:  # the connection broke: redis-py subscribes again when it reconnects
                log.warning("log bus: reading Redis failed", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            if message is None:
                continue
            if message["type"] == "psubscribe":
                if self._subscribed is not None and not self._subscribed.done():
                    self._subscribed.set_result(True)
                continue
            if message["type"] != "pmessage":
                continue
            name = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
            try:
                task_id = int(name[len(prefix):])
            except ValueError:
                continue
            if task_id not in self.followers:
                continue
            try:
                payload = json.loads(message["data"])
            except (ValueError, TypeError):
                continue
            self.deliver(task_id, payload.get("lines") or [], bool(payload.get("end")))

    # ---- delivering --------------------------------------------------------------------------

    def deliver(self, task_id: int, lines: list, ended: bool) -> None:
        """On this hub's loop: hand the lines to every local follower of the task."""
        for deliver in list(self.followers.get(task_id, {}).values()):
            try:
                deliver(task_id, lines, ended)
            except Exception:  # one broken socket must not starve the others
                log.exception("log bus: delivering task %s lines failed", task_id)

    def deliver_many(self, batch: list[tuple[int, list, bool]]) -> None:
        for task_id, lines, ended in batch:
            self.deliver(task_id, lines, ended)


_hubs: dict[asyncio.AbstractEventLoop, Hub] = {}
_hubs_lock = threading.Lock()


def hub() -> Hub:
    """The hub of the running loop (created on first use)."""
    loop = asyncio.get_running_loop()
    with _hubs_lock:
        found = _hubs.get(loop)
        if found is None or found.loop.is_closed():
            found = _hubs[loop] = Hub(loop)
        for other in [other for other in _hubs if other.is_closed()]:
            del _hubs[other]
        return found


# ---- publishing (the pusher's thread) -------------------------------------------------------

_publisher = threading.local()


def publish(batch: list[tuple[int, list, bool]]) -> None:
    """(task id, lines, ended) for every stream due, in order. With Redis: one pipelined round
    trip for them all; without it: one hop to each loop that follows any of them. Never raises."""
    if not batch:
        return
    try:
        if settings.REDIS_URL:
            _publish_redis(batch)
        else:
            _publish_local(batch)
    except Exception:
        log.warning("log bus: publishing %d streams failed", len(batch), exc_info=True)


def _publish_redis(batch: list[tuple[int, list, bool]]) -> None:
    import redis

    client = getattr(_publisher, "client", None)
    if client is None:
        client = _publisher.client = redis.Redis.from_url(settings.REDIS_URL)
    pipe = client.pipeline(transaction=False)
    for task_id, lines, ended in batch:
        pipe.publish(channel_name(task_id), json.dumps({"lines": lines, "end": ended}, separators=(",", ":")))
    pipe.execute()


def _publish_local(batch: list[tuple[int, list, bool]]) -> None:
    with _hubs_lock:
        hubs = [h for h in _hubs.values() if not h.loop.is_closed()]
    for found in hubs:
        mine = [item for item in batch if item[0] in found.followers]
        if mine:
            found.loop.call_soon_threadsafe(found.deliver_many, mine)
