"""Figures for live logs: lines handed to the persistence + push entry point (steplogs.append_lines,
what the step monitor's pump and the engine use) until they arrive at WebSocket clients of a real
ASGI server (uvicorn, /ws/logs/) on loopback, in a separate process. Prints a table; not pass/fail.

Each line carries the time it was handed over; latency = arrival at the client - that time, so
it includes the bulk insert, the commit, the pusher's and the consumer's coalescing (100 ms
each at most), the channel layer and the socket. Every client also checks it got every line
exactly once and in order.

    .venv/bin/python bench/bench_logs.py                      # SQLite + in-process channel layer
    DATABASE_URL=postgres://dice:dice@127.0.0.1:55999/dice_bench REDIS_URL=redis://127.0.0.1:56999/0 \\
        .venv/bin/python bench/bench_logs.py                  # PostgreSQL + Redis

Figures (issue 25 item 6, SQLite + in-process layer, this 2-core machine at load average ~8 from
five other engineers' work, 2026-12-06): scenario 4, 50 streams offered 20k lines/s in total,
one append_lines call per stream: 4,535 lines/s (p99 243 ms) on main, 5,698 lines/s (p99 586 ms)
on this branch; scenario 5, the same lines handed over per tick for all streams in one call
(steplogs.append_lines_many): 13,507 lines/s, p50 664 ms, p99 2,824 ms. Persisting 50 x 40 lines
in one call went from 197 ms to 64-184 ms (cProfile, same load); the latency left is in pushing
the lines to the 50 WebSocket streams (same process), not in the database: the 20k lines/s with
p99 < 250 ms goal is not reached here.

2026-12-07, after the batching of this branch (monitor: one transaction per pass for every talking
step; pusher: one hop to the loop for every stream due; consumer: no thread hop per pushed
message), `--only 4 5 --stream-lines 4000` (50 streams x 4,000 lines, offered 20k lines/s),
alternated with main, load average 4.5-5.7:
  per-stream appends (4): branch 14,418 / 10,703 / 14,198 lines/s, p99 32 / 61 / 36 ms;
                          main   14,259 / 13,295 lines/s, p99 256 / 226 ms
  batched (5):            branch 19,887 / 20,019 / 20,027 lines/s, p99 246 / 257 / 173 ms;
                          main   19,932 / 19,893 lines/s, p99 179 / 698 ms
2026-12-07 later, PostgreSQL + Redis, `--only 5 --stream-lines 4000 --trace`: before this change
13,100-14,169 lines/s, p99 1,722-2,031 ms (load 3.8-4.3); the trace put the tail in "received"
(Channels' Redis layer: ~8 round trips per message, received one at a time per process, messages
over its capacity of 100 dropped and read back from the database). With the log bus
(apps/logs/bus.py), the consumer's second interval gone and LogChunk's insert without UNNEST, five
consecutive runs: 20,075 / 20,042 / 20,079 / 20,076 / 20,048 lines/s, p99 113 / 229 / 256 / 306 /
181 ms (load 2.9-3.8); the tail was then "stored": the PostgreSQL transaction, where topping up
50 tails read each one's lines and wrote them back whole, one UPDATE per stream (~35 of ~45 ms).
With the tails topped up by the database in one statement, five consecutive runs (load 2.5-3.0):
20,099 / 20,095 / 20,096 / 20,048 / 20,007 lines/s, p99 104 / 70 / 179 / 75 / 249 ms, every line
once. Standalone (SQLite, in-process), five consecutive runs at load 2.7-5.4: 20,092 / 20,156 /
19,826 / 19,923 / 20,040 lines/s, p99 300 / 106 / 264 / 178 / 185 ms; alternated with main at
load 8-14: main p99 561 / 258 / 502 ms, this branch 71 / 124 / 161 ms. With --trace (standalone,
load 6) no hop dominates any more: stored p99 70, flushed (the loop's delay) 45, client 56 ms.
Scenario 5 is what the monitor's pass now does for running steps. At load average 14-60 (the
same morning) every figure was several times worse, on both: the producer, the server and the
clients share the two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DICE_ORG_CREATION", "anyone")  # the bench user makes its own organizations

PAYLOAD = " \x1b[32mINFO\x1b[0m worker: processed item, all good here " + "x" * 40  # ~100-byte lines


def setup_django(data_dir: str) -> None:
    os.environ["DICE_DATA_DIR"] = data_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dice_console.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int):
    """uvicorn with the console's ASGI app in a thread; its loop is registered for group_send."""
    import uvicorn

    from dice_console import realtime

    config = uvicorn.Config("dice_console.asgi:application", host="127.0.0.1", port=port, lifespan="off",
                            log_level="warning", ws="websockets-sansio")
    server = uvicorn.Server(config)

    async def serve():
        realtime.register_server_loop(asyncio.get_running_loop())
        await server.serve()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return server, thread


# ---- tracing: where a line's time goes --------------------------------------------------------

# The hops of a line, in order, each marked when the line leaves it (the client's arrival is the last).
HOPS = [
    ("stored", "handed over -> committed (the insert, the commit; Pusher.add)"),
    ("picked", "committed -> the pusher takes it (PUSH_INTERVAL coalescing, the thread's wake-up)"),
    ("pushed", "taken -> published (apps.logs.bus: Redis, or the hop to the followers' loop)"),
    ("received", "published -> the consumer has it (Redis pub/sub, the web process's reader)"),
    ("flushed", "received -> the consumer flushes it (the loop's delay)"),
    ("written", "flushing -> written to the socket (JSON, the WebSocket frame, compression)"),
    ("client", "written -> the client has it (the socket, the client's decoding)"),
]


class Trace:
    """Marks (task id, first line, last line, time) per hop, recorded by patches of the server side."""

    def __init__(self) -> None:
        self.marks: dict[str, list] = {hop: [] for hop, _ in HOPS}

    def mark(self, hop: str, stream: str, lines: list) -> None:
        if lines:
            self.marks[hop].append((int(stream.split(":")[1]), lines[0][0], lines[-1][0], time.time()))

    def install(self) -> None:
        """Patch the pusher, the log bus and the logs consumer of this process."""
        from apps.logs import bus, consumers, push

        trace = self
        add, messages, publish = push.Pusher.add, push.Pusher._messages, bus.publish
        pushed, send_lines = consumers.LogsConsumer._pushed, consumers.LogsConsumer._send_lines

        def traced_add(self, task_run_id, lines):
            trace.mark("stored", f"task:{task_run_id}", lines)
            return add(self, task_run_id, lines)

        def traced_messages(task_id, lines, ended):
            trace.mark("picked", f"task:{task_id}", lines)
            return messages(task_id, lines, ended)

        def traced_publish(batch):
            publish(batch)
            for task_id, lines, _ in batch:
                trace.mark("pushed", f"task:{task_id}", lines)

        def traced_pushed(self, task_id, lines, ended):
            trace.mark("received", f"task:{task_id}", lines)
            return pushed(self, task_id, lines, ended)

        async def traced_send_lines(self, stream, lines, sub):
            trace.mark("flushed", stream, lines)
            await send_lines(self, stream, lines, sub)
            trace.mark("written", stream, lines)

        push.Pusher.add = traced_add
        push.Pusher._messages = staticmethod(traced_messages)
        push.bus.publish = traced_publish
        consumers.LogsConsumer._pushed = traced_pushed
        consumers.LogsConsumer._send_lines = traced_send_lines

    def take(self) -> dict[str, list]:
        marks, self.marks = self.marks, {hop: [] for hop, _ in HOPS}
        return marks


def hop_report(marks: dict[str, list], arrivals: dict[int, list], stamps: dict[int, list]) -> list[str]:
    """Per hop: p50 and p99 of its time over all lines, and its mean over the slowest 1% of lines
    (those whose total is at or above the p99): the hop that holds the tail."""
    at: dict[str, dict[int, list]] = {}
    for hop, _ in HOPS[:-1]:
        per_task = at[hop] = {}
        for task_id, first, last, t in marks.get(hop, []):
            row = per_task.setdefault(task_id, [None] * (len(arrivals[task_id]) + 1))
            for number in range(first, last + 1):
                if number < len(row) and row[number] is None:  # the first time a line leaves a hop
                    row[number] = t
    at["client"] = {task_id: [None, *times] for task_id, times in arrivals.items()}
    rows = []  # per line: the time spent in each hop
    for task_id, times in arrivals.items():
        for number in range(1, len(times) + 1):
            previous, spent = stamps[task_id][number - 1], []
            for hop, _ in HOPS:
                t = at[hop].get(task_id, [None] * (number + 1))[number]
                if t is None:  # a line read from the database (a gap) skips the push hops
                    spent.append(None)
                    continue
                spent.append(max(0.0, t - previous))
                previous = t
            rows.append((sum(x for x in spent if x is not None), spent))
    rows.sort(key=lambda r: r[0])
    tail = rows[int(len(rows) * 0.99) - 1:]
    out = [f"{'hop':10} {'p50 ms':>8} {'p99 ms':>8} {'tail ms':>8}  (tail: mean over the slowest 1% of lines)"]
    for i, (hop, what) in enumerate(HOPS):
        values = sorted(r[1][i] for r in rows if r[1][i] is not None)
        tail_values = [r[1][i] for r in tail if r[1][i] is not None]
        if not values:
            continue
        out.append(f"{hop:10} {values[len(values) // 2] * 1000:>8.1f} {values[int(len(values) * 0.99) - 1] * 1000:>8.1f} "
                   f"{(sum(tail_values) / max(1, len(tail_values))) * 1000:>8.1f}  {what}")
    missing = sum(1 for r in rows if None in r[1])
    if missing:
        out.append(f"({missing:,} lines reached the client without some hop: read from the database)")
    return out


# ---- the client process ------------------------------------------------------------------------


def client_main(port: int, token: str, streams: list[str], expected: int, results) -> None:
    asyncio.run(_clients(port, token, streams, expected, results))


async def _clients(port, token, streams, expected, results):
    from websockets.asyncio.client import connect

    stats = {s: {"next": 1, "bad": 0, "lat": [], "last_at": 0.0, "stamps": [], "arrivals": []} for s in streams}
    sockets = []
    for stream in streams:
        ws = await connect(f"ws://127.0.0.1:{port}/ws/logs/?token={token}", origin=f"http://127.0.0.1:{port}",
                           max_size=None)
        await ws.send(json.dumps({"type": "subscribe", "stream": stream, "from": 0}))
        sockets.append((stream, ws))
    results.put(("ready", None))

    async def read(stream, ws):
        st = stats[stream]
        while st["next"] <= expected:
            message = json.loads(await ws.recv())
            now = time.time()
            if message["type"] != "lines":
                continue
            for number, _ts, _stream, text in message["lines"]:
                if number != st["next"]:
                    st["bad"] += 1
                st["next"] = number + 1
                stamp = float(text.split(" ", 1)[0])
                st["lat"].append(now - stamp)
                st["stamps"].append(stamp)
                st["arrivals"].append(now)
            st["last_at"] = now
        await ws.close()

    await asyncio.gather(*(read(s, ws) for s, ws in sockets))
    lat = [x for st in stats.values() for x in st["lat"]]
    results.put(("done", {"lat": lat, "bad": sum(st["bad"] for st in stats.values()),
                          "received": sum(st["next"] - 1 for st in stats.values()),
                          "last_at": max(st["last_at"] for st in stats.values()),
                          "lines": {int(s.split(":")[1]): (st["stamps"], st["arrivals"]) for s, st in stats.items()}}))


# ---- one scenario ------------------------------------------------------------------------------


def scenario(port, token, tenant_app, *, streams: int, lines: int, rate: float | None, batch: int,
             together: bool = False, trace: Trace | None = None) -> dict:
    """`streams` task runs get `lines` lines each, in batches of `batch`, at `rate` lines/s per
    stream (None: as fast as the database takes them); `together`: each tick's lines of every
    stream are handed over in one call (steplogs.append_lines_many), else one call per stream."""
    from apps.pipelines import steplogs
    from apps.pipelines.models import PipelineRun, TaskRun

    run = PipelineRun.objects.create(application=tenant_app, source="x", status="running")
    tasks = [TaskRun.objects.create(run=run, alias=f"t{i}", type="custom-script", status="running")
             for i in range(streams)]
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=client_main, args=(port, token, [f"task:{t.pk}" for t in tasks], lines, results))
    proc.start()
    assert results.get(timeout=60)[0] == "ready"
    time.sleep(0.3)
    if trace is not None:
        trace.take()
    start = time.time()
    written = 0
    tick = batch / rate if rate else 0.0
    next_at = time.monotonic()
    while written < lines:
        count = min(batch, lines - written)
        if together:  # every stream's lines of this tick in one call (one transaction)
            stamp = f"{time.time():.6f}"
            steplogs.append_lines_many([(task, [stamp + PAYLOAD] * count, "stdout") for task in tasks])
        else:
            for task in tasks:
                stamp = f"{time.time():.6f}"
                steplogs.append_lines(task, [stamp + PAYLOAD] * count, "stdout")
        written += count
        if tick:
            next_at += tick
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    produced = time.time() - start
    kind, data = results.get(timeout=300)
    proc.join(30)
    lat = sorted(data["lat"])
    total = streams * lines
    hops = None
    if trace is not None:
        hops = hop_report(trace.take(), {k: v[1] for k, v in data["lines"].items()},
                          {k: v[0] for k, v in data["lines"].items()})
    return {"hops": hops,
        "streams": streams, "lines": total, "rate": f"{rate * streams:,.0f}/s" if rate else "max",
        "produce_s": produced, "lines_per_s": data["received"] / (data["last_at"] - start),
        "p50_ms": statistics.median(lat) * 1000, "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000,
        "max_ms": lat[-1] * 1000, "exactly_once": data["received"] == total and data["bad"] == 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000, help="lines of the one-stream runs")
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--stream-lines", type=int, default=10_000, help="lines per stream of the many-stream runs")
    parser.add_argument("--rate", type=float, default=20_000, help="lines/s of the paced one-stream run")
    parser.add_argument("--only", type=int, nargs="*", help="run only these scenarios (1-5)")
    parser.add_argument("--trace", action="store_true",
                        help="also print where the lines' time went, hop by hop (patches the server side)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        setup_django(tmp)
        from django.conf import settings
        from django.contrib.auth import get_user_model

        from apps.projects import services

        tag = f"bench-logs-{os.getpid()}"  # a PostgreSQL bench database outlives the run
        user = get_user_model().objects.create_user(tag)
        org = services.create_organization(user, slug=tag)
        project = services.create_project(user, org, slug="p")
        app = services.create_application(user, project, slug="a")
        _, token = services.create_token(user, name="bench")
        trace = Trace() if args.trace else None
        if trace is not None:
            trace.install()
        port = free_port()
        server, _ = start_server(port)
        db = "PostgreSQL" if settings.DATABASES["default"]["ENGINE"].endswith("postgresql") else "SQLite (WAL)"
        layer = "Redis" if settings.REDIS_URL else "in-process"
        print(f"database: {db}; channel layer: {layer}; lines ~{len(PAYLOAD) + 17} bytes")
        many = {"streams": args.streams, "lines": args.stream_lines, "rate": args.rate / args.streams, "batch": 40}
        rows = [
            ("1 stream, as fast as possible", {"streams": 1, "lines": args.lines, "rate": None, "batch": 1000}),
            (f"1 stream at {args.rate:,.0f} lines/s", {"streams": 1, "lines": args.lines, "rate": args.rate, "batch": 500}),
            (f"{args.streams} streams, as fast as possible",
             {"streams": args.streams, "lines": args.stream_lines, "rate": None, "batch": 200}),
            (f"{args.streams} streams at {args.rate / args.streams:,.0f} lines/s each", many),
            ("same, all streams per call (batched)", {**many, "together": True}),
        ]
        header = f"{'scenario':40} {'lines':>8} {'lines/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'once':>5}"
        print(header)
        print("-" * len(header))
        for i, (name, kwargs) in enumerate(rows, 1):
            if args.only and i not in args.only:
                continue
            r = scenario(port, token, app, **kwargs, trace=trace)
            print(f"{name:40} {r['lines']:>8,} {r['lines_per_s']:>9,.0f} {r['p50_ms']:>8.0f} {r['p99_ms']:>8.0f} "
                  f"{r['max_ms']:>8.0f} {'yes' if r['exactly_once'] else 'NO':>5}", flush=True)
            for line in r["hops"] or []:
                print("    " + line, flush=True)
        server.should_exit = True


if __name__ == "__main__":
    main()
