"""Figures for live logs: lines handed to the persistence + push entry point (steplogs.append_lines,
what the step monitor's pump and the engine use) until they arrive at WebSocket clients of a real
ASGI server (uvicorn, /ws/logs/) on loopback, in a separate process. Prints a table; not pass/fail.

Scenario 6 is the path a real step's line takes, end to end: a pipeline of 50 steps side by side
on the local cluster (this process's embedded worker and step monitor, as standalone runs them),
each step's process printing stamped lines at its rate; the line goes through the step's agent and
shim to the job's log, is read by the monitor, stored, pushed and received over WebSocket, and its
latency counts from the step's own print. With --trace it also shows the agent's, the shim's and
the monitor's read hops, and it prints the CPU of the console process and of the machine over the
run and when the slowest lines were printed.

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

2026-12-07, branch logtail (the monitor reads logs from remembered positions and is woken by
inotify; scenario 6 added). Scenario 5, `--only 5 --stream-lines 4000`, five in a row each:
PostgreSQL + Redis 20,062 / 20,131 / 20,075 / 20,087 / 20,129 lines/s, p99 115 / 92 / 65 / 64 /
55 ms (load 8.3, 7.3, 6.5, 5.6, 4.6 at each start: others' work ending); standalone (SQLite,
in-process) 20,139 / 20,131 / 20,148 / 20,159 / 20,152 lines/s, p99 34 / 40 / 30 / 36 / 33 ms
(load 3.7, 2.9, 2.5, 2.1, 1.7); every line exactly once. Scenario 6 (real steps, end to end),
`--only 6 --stream-lines 4000`, five in a row each on a quiet machine: standalone (load 1.0-1.4)
18,117-18,393 lines/s (first to last line, the steps starting over ~1 s), p50 36-43 ms, p99 262 /
289 / 335 / 404 / 287 ms; PostgreSQL + Redis (load 1.3-4.4) 17,362-18,041 lines/s, p50 59-76 ms,
p99 530 / 797 / 691 / 602 / 463 ms; every line once. The slowest 1% are the lines printed in the
first ~0.5 s, while the 50 steps are being started (the console's dispatch and their first reads
share the interpreter), or the last ones (the collection of 50 steps ending together); in between
a line waits ~25-40 ms. Before this branch the same path was 17,384 lines/s, p50 102 ms, p99 618
ms (load ~5; the monitor woke every 0.5 s and re-read each step's whole log), and at load 6-10
11,000-15,000 lines/s with p99 of seconds. Under others' load (8-11) scenario 6 stays seconds at
p99: the console, the 150 step processes (SCHED_IDLE), the clients and the other engineers share
two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import shlex
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
        self.marks: dict[str, list] = {hop: [] for hop, _ in STEP_HOPS + HOPS}

    def mark(self, hop: str, stream: str, lines: list) -> None:
        if lines:
            self.marks[hop].append((int(stream.split(":")[1]), lines[0][0], lines[-1][0], time.time()))

    def install(self) -> None:
        """Patch the pusher, the log bus and the logs consumer of this process."""
        from apps.logs import bus, consumers, push
        from apps.pipelines import steplogs

        trace = self
        fresh_lines = steplogs._fresh_lines

        read_log = steplogs.job_log_from
        shim_times: list[float] = []

        def traced_read_log(*args, **kwargs):
            lines, position = read_log(*args, **kwargs)
            shim_times[:] = [line.timestamp for line in lines]  # the shim's time of each line
            return lines, position

        def traced_fresh_lines(executor, run, task, masker, position=None):
            found = fresh_lines(executor, run, task, masker, position)
            rows = found[0]
            if rows:  # numbered as they will be stored
                now = time.time()
                trace.marks["read"].append((task.pk, task.last_line + 1, task.last_line + len(rows), now))
                for i, at in enumerate(shim_times[-len(rows):]):
                    trace.marks["shim"].append((task.pk, task.last_line + 1 + i, task.last_line + 1 + i, at))
            return found

        steplogs._fresh_lines = traced_fresh_lines
        steplogs.job_log_from = traced_read_log
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
        marks, self.marks = self.marks, {hop: [] for hop, _ in STEP_HOPS + HOPS}
        return marks


# A real step's line (scenario 6) first crosses these, before the hops above.
STEP_HOPS = [
    ("agent", "printed -> the agent relays it (its read of the pipe, JSON; the stored line's time)"),
    ("shim", "relayed -> the shim has written it to the job's log (its time in the log)"),
    ("read", "written -> the monitor reads it (the log watch's wake-up, GATHER, the pass before)"),
]


def hop_report(marks: dict[str, list], lines: dict[int, list], hops: list | None = None) -> list[str]:
    """Per hop: p50 and p99 of its time over all lines, and its mean over the slowest 1% of lines
    (those whose total is at or above the p99): the hop that holds the tail. lines: task id ->
    [(stored line number, stamp, the agent's time or None, arrival)]."""
    hops = hops or HOPS
    at: dict[str, dict[int, dict]] = {}
    for hop, _ in hops[:-1]:
        per_task = at[hop] = {}
        for task_id, first, last, t in marks.get(hop, []):
            row = per_task.setdefault(task_id, {})
            for number in range(first, last + 1):
                row.setdefault(number, t)  # the first time a line leaves a hop
    rows = []  # per line: the time spent in each hop
    for task_id, seen in lines.items():
        for number, stamp, agent_at, arrival in seen:
            previous, spent = stamp, []
            for hop, _ in hops:
                t = {"client": arrival, "agent": agent_at}.get(hop) if hop in ("client", "agent") \
                    else at[hop].get(task_id, {}).get(number)
                if t is None:  # a line read from the database (a gap) skips the push hops
                    spent.append(None)
                    continue
                spent.append(max(0.0, t - previous))
                previous = t
            rows.append((sum(x for x in spent if x is not None), spent))
    rows.sort(key=lambda r: r[0])
    tail = rows[int(len(rows) * 0.99) - 1:]
    out = [f"{'hop':10} {'p50 ms':>8} {'p99 ms':>8} {'tail ms':>8}  (tail: mean over the slowest 1% of lines)"]
    for i, (hop, what) in enumerate(hops):
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


def client_main(port: int, token: str, streams: list[str], expected: int, results, steps: bool = False) -> None:
    asyncio.run(_clients(port, token, streams, expected, results, steps))


async def _clients(port, token, streams, expected, results, steps=False):
    from websockets.asyncio.client import connect

    stats = {s: {"next": 1, "bad": 0, "lat": [], "last_at": 0.0, "seen": []} for s in streams}
    sockets = []
    for stream in streams:
        ws = await connect(f"ws://127.0.0.1:{port}/ws/logs/?token={token}", origin=f"http://127.0.0.1:{port}",
                           max_size=None)
        await ws.send(json.dumps({"type": "subscribe", "stream": stream, "from": 0}))
        sockets.append((stream, ws))
    results.put(("ready", None))

    async def read(stream, ws):
        st = stats[stream]
        st["got"] = 0  # the lines counted: every line, or (steps) the step's own stamped ones
        while st["got"] < expected:
            message = json.loads(await ws.recv())
            now = time.time()
            if message["type"] != "lines":
                continue
            for number, ts, _stream, text in message["lines"]:
                if number != st["next"]:
                    st["bad"] += 1
                st["next"] = number + 1
                head = text.split(" ", 2)
                if steps:  # "<stamp> <index> payload" from the step; the agent's and console's lines between
                    if len(head) < 3 or not head[1].isdigit():
                        continue
                    if int(head[1]) != st["got"] + 1:
                        st["bad"] += 1
                stamp = float(head[0])
                st["got"] += 1
                st["lat"].append(now - stamp)
                st["seen"].append((number, stamp, ts if steps else None, now))
            st["last_at"] = now
        await ws.close()

    await asyncio.gather(*(read(s, ws) for s, ws in sockets))
    lat = [x for st in stats.values() for x in st["lat"]]
    results.put(("done", {"lat": lat, "bad": sum(st["bad"] for st in stats.values()),
                          "received": sum(st["got"] for st in stats.values()),
                          "last_at": max(st["last_at"] for st in stats.values()),
                          "lines": {int(s.split(":")[1]): st["seen"] for s, st in stats.items()}}))


# ---- one scenario ------------------------------------------------------------------------------


def scenario(port, token, tenant_app, *, streams: int, lines: int, rate: float | None, batch: int,
             together: bool = False, trace: Trace | None = None) -> dict:
    """`streams` task runs get `lines` lines each, in batches of `batch`, at `rate` lines/s per
    stream (None: as fast as the database takes them); `together`: each tick's lines of every
    stream are handed over in one call (steplogs.append_lines_many), else one call per stream."""
    from apps.pipelines.models import PipelineRun, TaskRun

    run = PipelineRun.objects.create(application=tenant_app, source="x", status="running")
    tasks = [TaskRun.objects.create(run=run, alias=f"t{i}", type="custom-script", status="running")
             for i in range(streams)]
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=client_main, args=(port, token, [f"task:{t.pk}" for t in tasks], lines, results))
    proc.start()
    try:
        return _feed(proc, results, run, tasks, lines=lines, rate=rate, batch=batch, together=together, trace=trace)
    finally:  # a PostgreSQL bench database outlives the run: no stand-in run stays "running" for the worker
        TaskRun.objects.filter(run=run).update(status="success")
        PipelineRun.objects.filter(pk=run.pk).update(status="success")


def _feed(proc, results, run, tasks, *, lines, rate, batch, together, trace) -> dict:
    from apps.pipelines import steplogs

    streams = len(tasks)
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
        hops = hop_report(trace.take(), data["lines"])
    return {"hops": hops,
        "streams": streams, "lines": total, "rate": f"{rate * streams:,.0f}/s" if rate else "max",
        "produce_s": produced, "lines_per_s": data["received"] / (data["last_at"] - start),
        "p50_ms": statistics.median(lat) * 1000, "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000,
        "max_ms": lat[-1] * 1000, "exactly_once": data["received"] == total and data["bad"] == 0,
    }


# ---- end to end: real steps ---------------------------------------------------------------------

# What each step runs: `lines` lines at `rate` lines/s, in ticks of 0.1 s, each "<time.time()> <index> payload",
# flushed at each tick (as a program writing its log would).
STEP_PROGRAM = (
    "import sys, time\n"
    "lines, rate = {lines}, {rate}\n"
    "per_tick = max(1, round(rate / 10))\n"
    "start, written = time.time(), 0\n"
    "while written < lines:\n"
    "    delay = start + written / rate - time.time()\n"
    "    if delay > 0:\n"
    "        time.sleep(delay)\n"
    "    count = min(per_tick, lines - written)\n"
    "    sys.stdout.write(''.join('%.6f %d %s\\n' % (time.time(), written + i + 1, {payload!r}) for i in range(count)))\n"
    "    sys.stdout.flush()\n"
    "    written += count\n"
)


def machine_busy() -> float:
    """CPU seconds the machine has been busy (all CPUs, from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def steps_source(streams: int, lines: int, rate: float, wait: float) -> str:
    """A pipeline: one step sleeping `wait` seconds (the clients subscribe meanwhile), then
    `streams` steps side by side, each printing `lines` stamped lines at `rate` lines/s."""
    program = STEP_PROGRAM.format(lines=lines, rate=rate, payload="INFO worker: processed item, all good " + "x" * 40)
    command = "python3 -c " + shlex.quote(program)
    out = ['version: "1.1"', "stages:", "  - stage:", "      - custom-script:", "          alias: settle",
           f"          commands: [{json.dumps(f'sleep {wait}')}]", "  - stage:"]
    for i in range(streams):
        out += ["      - custom-script:", f"          alias: s{i}", f"          commands: [{json.dumps(command)}]"]
    return "\n".join(out) + "\n"


def scenario_steps(port, token, user, tenant_app, *, streams: int, lines: int, rate: float, wait: float = 4.0,
                   trace: Trace | None = None) -> dict:
    """End to end, the path a real step's line takes: printed by the step's process, through its
    agent to the shim, written to the job's log, read by the step monitor (this process's embedded
    worker, woken by the log watch), stored, pushed, and received by a WebSocket client."""
    from apps.pipelines import services
    from apps.pipelines.models import PipelineRun

    cpu_before = resource.getrusage(resource.RUSAGE_SELF), machine_busy(), time.monotonic()
    run = services.start_run(user, tenant_app, source=steps_source(streams, lines, rate, wait))
    tasks = sorted((t for t in run.tasks.all() if t.alias != "settle"), key=lambda t: int(t.alias[1:]))
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=client_main, args=(port, token, [f"task:{t.pk}" for t in tasks], lines, results, True))
    proc.start()
    assert results.get(timeout=60)[0] == "ready"
    ready_at = time.time()
    if trace is not None:
        trace.take()
    kind, data = results.get(timeout=wait + 60 + 3 * lines / rate)
    proc.join(30)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status in ("success", "failed", "cancelled", "timed-out"):
            break
        time.sleep(0.2)
    me, busy, wall = resource.getrusage(resource.RUSAGE_SELF), machine_busy(), time.monotonic()
    console_cpu = me.ru_utime + me.ru_stime - cpu_before[0].ru_utime - cpu_before[0].ru_stime
    first = min(seen[0][1] for seen in data["lines"].values() if seen)
    lat = sorted(data["lat"])
    total = streams * lines
    stored_once = all(
        sum(1 for line in read_task_lines(t.pk) if _stamped(line.text)) == lines for t in tasks)
    hops = [f"cpu over the run ({wall - cpu_before[2]:.1f} s): console process {console_cpu:.1f} s, whole machine "
            f"{busy - cpu_before[1]:.1f} s (the rest: the steps' processes, the clients, others' work)"]
    hops += [] if first > ready_at else [f"(the clients were ready {ready_at - first:.1f} s after the first line: "
                                        "its latency includes that wait)"]
    p99 = lat[int(len(lat) * 0.99) - 1]
    slow = sorted(stamp - first for seen in data["lines"].values() for _, stamp, _, at in seen if at - stamp >= p99)
    if slow:
        hops.append(f"the slowest 1% of lines were printed {slow[0]:.1f} to {slow[-1]:.1f} s after the first line "
                    f"(median {slow[len(slow) // 2]:.1f} s; the steps printed for ~{lines / rate:.0f} s)")
    if trace is not None:
        hops += hop_report(trace.take(), data["lines"], STEP_HOPS + HOPS)
    return {"hops": hops,
            "streams": streams, "lines": total, "rate": f"{rate * streams:,.0f}/s",
            "lines_per_s": data["received"] / (data["last_at"] - first),
            "p50_ms": statistics.median(lat) * 1000, "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000,
            "max_ms": lat[-1] * 1000,
            "exactly_once": data["received"] == total and data["bad"] == 0 and stored_once
            and PipelineRun.objects.filter(pk=run.pk, status="success").exists()}


def _stamped(text: str) -> bool:
    head = text.split(" ", 2)
    return len(head) == 3 and head[1].isdigit()


def read_task_lines(task_id: int):
    from apps.logs.services import read_task_lines as read

    return read(task_id)


def run_steps(args, port, token, user, app, trace) -> dict:
    """Scenario 6 with this process's embedded worker (its step monitor) and local cluster, as the
    standalone console runs them."""
    from django.conf import settings

    from dice_console.celery import app as celery_app
    from dice_console.embedded import EmbeddedWorker

    settings.DICE_PIPELINE_MAX_PARALLEL_STEPS = max(settings.DICE_PIPELINE_MAX_PARALLEL_STEPS, args.streams + 1)
    worker = EmbeddedWorker(celery_app, with_beat=False, concurrency=4)
    worker.start()
    try:
        return scenario_steps(port, token, user, app, streams=args.streams, lines=args.stream_lines,
                              rate=args.rate / args.streams, wait=args.settle, trace=trace)
    finally:
        from bench.embedded import stop_console

        stop_console(worker)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000, help="lines of the one-stream runs")
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--stream-lines", type=int, default=10_000, help="lines per stream of the many-stream runs")
    parser.add_argument("--rate", type=float, default=20_000, help="lines/s of the paced one-stream run")
    parser.add_argument("--only", type=int, nargs="*", help="run only these scenarios (1-6)")
    parser.add_argument("--settle", type=float, default=4.0,
                        help="scenario 6: seconds the first step sleeps before the printing steps start")
    parser.add_argument("--trace", action="store_true",
                        help="also print where the lines' time went, hop by hop (patches the server side)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DICE_LOCAL_ROOT"] = str(Path(tmp) / "local")
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
            (f"{args.streams} real steps at {args.rate / args.streams:,.0f} lines/s each", None),
        ]
        header = f"{'scenario':40} {'lines':>8} {'lines/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'once':>5}"
        print(header)
        print("-" * len(header))
        for i, (name, kwargs) in enumerate(rows, 1):
            if args.only and i not in args.only:
                continue
            if kwargs is None:
                r = run_steps(args, port, token, user, app, trace)
            else:
                r = scenario(port, token, app, **kwargs, trace=trace)
            print(f"{name:40} {r['lines']:>8,} {r['lines_per_s']:>9,.0f} {r['p50_ms']:>8.0f} {r['p99_ms']:>8.0f} "
                  f"{r['max_ms']:>8.0f} {'yes' if r['exactly_once'] else 'NO':>5}", flush=True)
            for line in r["hops"] or []:
                print("    " + line, flush=True)
        server.should_exit = True


if __name__ == "__main__":
    main()
