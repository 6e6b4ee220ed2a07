"""/ws/logs/: live logs over one WebSocket, any number of streams.

Client -> server: {"type": "subscribe", "stream": "task:<id>", "from": N}
                  {"type": "subscribe", "stream": "runtime:<id>:<service>", "from": {"<replica>": N}}
                  {"type": "unsubscribe", "stream": ...}
Server -> client: {"type": "lines", "stream": s, "lines": [[n, ts, stream, text], ...]}  (runtime lines
                  carry a fifth item, the replica, and are numbered per replica)
                  {"type": "end", "stream": s, "last": N}  the task finished; its log has N lines
                  {"type": "events", "stream": s, "events": [...]}  runtime service events
                  {"type": "error", "stream": s, "error": "..."}
Close codes: 4401 not authenticated, 4404 a stream outside the user's organizations (no lines sent),
4400 a malformed subscription, 4403 the user's token or access to a subscribed stream was revoked
while it was open.

Task lines: the consumer follows the task on the log bus (apps/logs/bus.py) before reading the
stored lines after N, then
sends every line exactly once in number order: pushed lines it already sent are dropped, and a
pushed line beyond the next expected number first makes it read the gap from the database.
A watchdog re-reads a quiet stream every WATCH seconds, so a lost push delays, never loses."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.db import OperationalError

from apps.logs import bus, store
from apps.logs.wsauth import PROTOCOL_PREFIX
from dice_console.api_input import digits
from dice_console.wsaccess import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED, FollowsAccess, refuse

FLUSH_INTERVAL = 0.1  # runtime streams: at most ~10 messages a second per stream to the browser
PAGE = 5000  # lines per message when sending stored lines
WATCH = 2.0


@dataclass
class TaskStream:
    task_id: int
    last: int  # number of the last line sent
    ready: bool = False  # the stored lines have been sent; pushed ones may go now
    pending: list = field(default_factory=list)
    end: bool = False  # a "finished" push came: end the stream once caught up
    done: bool = False  # the end message was sent
    sent_at: float = 0.0
    timer: asyncio.Task | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class RuntimeStream:
    follower: object
    sub_id: int
    last: dict = field(default_factory=dict)  # replica -> last number sent
    pending: list = field(default_factory=list)
    sent_at: float = 0.0
    timer: asyncio.Handle | None = None


def parse_stream(text) -> tuple[str, int, str] | None:
    if not isinstance(text, str):
        return None
    parts = text.split(":", 2)
    if parts[0] == "task" and len(parts) == 2 and digits(parts[1]):
        return "task", int(parts[1]), ""
    if parts[0] == "runtime" and len(parts) == 3 and digits(parts[1]) and parts[2]:
        return "runtime", int(parts[1]), parts[2]
    return None


class LogsConsumer(FollowsAccess, AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await refuse(self, CLOSE_UNAUTHENTICATED)
            return
        self.tasks: dict[str, TaskStream] = {}
        self.runtimes: dict[str, RuntimeStream] = {}
        offered = [p for p in self.scope.get("subprotocols", []) or [] if p.startswith(PROTOCOL_PREFIX)]
        await self.accept(subprotocol=offered[0] if offered else None)
        await self.follow_access()
        self.watchdog = asyncio.get_running_loop().create_task(self._watch())

    def still_allowed_sync(self) -> bool:
        from apps.deploy.models import Runtime
        from apps.pipelines.models import TaskRun
        from apps.projects import scope

        user = self.scope["user"]
        tasks = {sub.task_id for sub in list(self.tasks.values())}
        runtimes = {int(stream.split(":")[1]) for stream in list(self.runtimes)}
        return (scope.scoped(user, TaskRun).filter(pk__in=tasks).count() == len(tasks)
                and scope.scoped(user, Runtime).filter(pk__in=runtimes).count() == len(runtimes))

    async def disconnect(self, code):
        await self.unfollow_access()
        if hasattr(self, "watchdog"):
            self.watchdog.cancel()
        for stream in list(getattr(self, "tasks", {})):
            await self._drop_task(stream)
        for stream in list(getattr(self, "runtimes", {})):
            await self._drop_runtime(stream)

    async def receive_json(self, content, **kwargs):
        if not isinstance(content, dict):
            await self.close(code=4400)
            return
        kind = content.get("type", "subscribe")
        parsed = parse_stream(content.get("stream"))
        if parsed is None or kind not in ("subscribe", "unsubscribe"):
            await self.send_json({"type": "error", "stream": content.get("stream"), "error": "malformed subscription"})
            await self.close(code=4400)
            return
        stream = content["stream"]
        if kind == "unsubscribe":
            await self._drop_task(stream)
            await self._drop_runtime(stream)
            return
        what, pk, service = parsed
        user = self.scope["user"]
        if what == "task":
            start = content.get("from", 0)
            if not await _task_visible(user, pk):
                await self.close(code=CLOSE_NOT_FOUND)
                return
            if stream not in self.tasks:
                await self._subscribe_task(stream, pk, int(start) if digits(str(start)) else 0)
        else:
            runtime = await _runtime_visible(user, pk)
            if runtime is None:
                await self.close(code=CLOSE_NOT_FOUND)
                return
            if stream not in self.runtimes:
                start = content.get("from") or {}
                after = {str(k): int(v) for k, v in start.items()} if isinstance(start, dict) else {}
                await self._subscribe_runtime(stream, runtime, service, after)

    # ---- task streams ------------------------------------------------------------------------

    async def _subscribe_task(self, stream: str, task_id: int, start: int) -> None:
        sub = self.tasks[stream] = TaskStream(task_id, start)
        # Pushed lines come from the log bus (apps/logs/bus.py), not the channel layer, and are
        # handled on this loop without the database (a gap is read through database_sync_to_async).
        await bus.hub().follow(task_id, self, self._pushed)
        async with sub.lock:
            await self._catch_up(stream, sub)
            sub.ready = True
        await self._flush_task(stream)

    async def _drop_task(self, stream: str) -> None:
        sub = self.tasks.pop(stream, None)
        if sub is not None:
            if sub.timer is not None:
                sub.timer.cancel()
            await bus.hub().unfollow(sub.task_id, self)

    async def _send_lines(self, stream: str, lines: list, sub: TaskStream) -> None:
        if lines:
            await self.send_json({"type": "lines", "stream": stream, "lines": lines})
            sub.last = lines[-1][0]
            sub.sent_at = time.monotonic()

    async def _catch_up(self, stream: str, sub: TaskStream, upto: int | None = None) -> None:
        """Send stored lines after sub.last (up to `upto`); end the stream if the task finished."""
        while True:
            limit = PAGE if upto is None else min(PAGE, upto - sub.last)
            if limit <= 0:
                return
            lines, finished, last_line = await _read(sub.task_id, sub.last, limit)
            await self._send_lines(stream, lines, sub)
            if len(lines) < limit:
                break
        if upto is None and finished and sub.last >= last_line and not sub.done:
            await self._end(stream, sub, last_line)
        elif upto is None and finished and not lines and not sub.done:
            # Finished, yet lines up to last_line are not stored (expired by retention).
            await self._end(stream, sub, last_line, expired=True)

    async def _end(self, stream: str, sub: TaskStream, last: int, expired: bool = False) -> None:
        sub.done = True
        message = {"type": "end", "stream": stream, "last": last}
        if expired:
            message["expired"] = True
        await self.send_json(message)

    def _pushed(self, task_id: int, lines: list, ended: bool) -> None:
        """Lines the bus brought (on this loop). They are flushed as soon as the loop gets to it:
        the pusher already sends a stream at most every PUSH_INTERVAL, and a second interval here
        added up to its length to every line (bench/bench_logs.py --trace: "flushed"). Pushes that
        arrive while a flush runs are sent together by the next one."""
        stream = f"task:{task_id}"
        sub = self.tasks.get(stream)
        if sub is None or sub.done:
            return
        sub.pending.extend(lines)
        if ended:
            sub.end = True  # finished: the next flush reads the last number and ends the stream
        if sub.timer is None or sub.timer.done():
            sub.timer = asyncio.get_running_loop().create_task(self._flush_task(stream))

    async def _flush_task(self, stream: str) -> None:
        sub = self.tasks.get(stream)
        if sub is None or not sub.ready:
            return
        async with sub.lock:
            pending, sub.pending = sub.pending, []
            pending.sort(key=lambda line: line[0])
            out: list = []
            for line in pending:
                number = line[0]
                if number <= sub.last + len(out):
                    continue
                if number > sub.last + len(out) + 1:  # a gap: lost or not yet pushed; read it
                    await self._send_lines(stream, out, sub)
                    out = []
                    await self._catch_up(stream, sub, upto=number - 1)
                    if number <= sub.last:
                        continue
                out.append(line)
            await self._send_lines(stream, out, sub)
            if sub.end and not sub.done:
                await self._catch_up(stream, sub)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH / 2)
            now = time.monotonic()
            for stream, sub in list(self.tasks.items()):
                if sub.ready and not sub.done and now - sub.sent_at >= WATCH and not sub.lock.locked():
                    async with sub.lock:
                        await self._catch_up(stream, sub)
                    sub.sent_at = max(sub.sent_at, now)

    # ---- runtime streams ---------------------------------------------------------------------

    async def _subscribe_runtime(self, stream: str, runtime, service: str, after: dict) -> None:
        from apps.logs import followers

        loop = asyncio.get_running_loop()

        def deliver(kind: str, items: list) -> None:
            loop.call_soon_threadsafe(self._runtime_items, stream, kind, items)

        follower = await database_sync_to_async(followers.follower_for)(runtime, service)
        sub_id, backlog, events = follower.subscribe(deliver, after)
        sub = self.runtimes[stream] = RuntimeStream(follower, sub_id, dict(after))
        if events:
            await self.send_json({"type": "events", "stream": stream, "events": events})
        sub.pending.extend(backlog)
        await self._flush_runtime(stream)

    def _runtime_items(self, stream: str, kind: str, items: list) -> None:
        sub = self.runtimes.get(stream)
        if sub is None:
            return
        loop = asyncio.get_running_loop()
        if kind == "events":
            loop.create_task(self.send_json({"type": "events", "stream": stream, "events": items}))
            return
        sub.pending.extend(items)
        if sub.timer is None:
            delay = max(0.0, sub.sent_at + FLUSH_INTERVAL - time.monotonic())
            sub.timer = loop.call_later(delay, lambda: loop.create_task(self._flush_runtime(stream)))

    async def _flush_runtime(self, stream: str) -> None:
        sub = self.runtimes.get(stream)
        if sub is None:
            return
        sub.timer = None
        pending, sub.pending = sub.pending, []
        out = []
        for line in pending:
            replica, number = line[4], line[0]
            if number > sub.last.get(replica, 0):
                sub.last[replica] = number
                out.append(line)
        if out:
            sub.sent_at = time.monotonic()
            for start in range(0, len(out), PAGE):
                await self.send_json({"type": "lines", "stream": stream, "lines": out[start:start + PAGE]})

    async def _drop_runtime(self, stream: str) -> None:
        from apps.logs import followers

        sub = self.runtimes.pop(stream, None)
        if sub is not None:
            if sub.timer is not None:
                sub.timer.cancel()
            followers.leave(sub.follower, sub.sub_id)


def _retrying(fn):
    """Run a read again while SQLite says the database is busy or locked by a writer."""

    def wrapper(*args):
        for attempt in range(100):
            try:
                return fn(*args)
            except OperationalError:
                if attempt == 99:
                    raise
                time.sleep(0.02)

    return database_sync_to_async(wrapper)


@_retrying
def _task_visible(user, task_id: int) -> bool:
    from apps.pipelines.models import TaskRun
    from apps.projects import scope

    return scope.scoped(user, TaskRun).filter(pk=task_id).exists()


@_retrying
def _runtime_visible(user, runtime_id: int):
    from apps.deploy.models import Runtime
    from apps.projects import scope

    return (scope.scoped(user, Runtime).filter(pk=runtime_id)
            .select_related("application__project__organization", "workspace", "cluster").first())


@_retrying
def _read(task_id: int, after: int, limit: int) -> tuple[list, bool, int]:
    """Stored lines after `after` (wire form), whether the task finished, and its last line number.
    The status is read before the lines: a finished task's lines are all stored by then."""
    from apps.pipelines.choices import FINISHED_TASK
    from apps.pipelines.models import TaskRun

    row = TaskRun.objects.filter(pk=task_id).values_list("status", "last_line").first()
    finished, last_line = (row[0] in FINISHED_TASK, row[1]) if row else (True, after)
    lines = [line.as_list() for line in store.read(task_id, after, limit)]
    return lines, finished, last_line
