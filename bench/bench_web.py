"""Bench: requests/s and latency of the web processes as production mode runs them (`uvicorn
dice_console.asgi:application --workers N`), at concurrency 50 and 200, with 1 and 2 web processes
(issue 24 item 3: the ratio 2:1 should approach 2 on two cores). Prints a table; not pass/fail.
`--bad-logins N` measures instead the API's latency alone and then while N wrong-password sign-ins
(each with its own CSRF cookie and token) are sent at `--login-concurrency` (default 40) beside it;
`--app-root DIR` serves another checkout (e.g. a commit before the sign-in pool) with this venv.

    .venv/bin/python bench/bench_web.py [--requests 2000] [--path /api/projects/]
    .venv/bin/python bench/bench_web.py --bad-logins 80 --workers 1 [--app-root /tmp/old-checkout]
    DATABASE_URL=postgres://... REDIS_URL=redis://... .venv/bin/python bench/bench_web.py

The client is asyncio over raw sockets (keep-alive, one connection per concurrent client) in this
process; on a 2-core machine it competes with the servers for CPU, so figures are a lower bound.
Uses a temporary SQLite database (DICE_DATA_DIR=<tmp>) unless DATABASE_URL is set.

Figures (2026-12-06, SQLite, 1000 requests per row, GET /api/projects/ with a token, this 2-core
machine at load average ~8 from five other engineers' work):

    web processes  concurrency  req/s  p50 ms  p99 ms  errors
                1           50     44    1057    2174       0
                1          200     44    4497    5173       0
                2           50     53     800    2802       0
                2          200     60    3144    3866       0
    ratio 2:1: 1.20 at concurrency 50, 1.38 at 200

Figures (2026-12-07, PostgreSQL + Redis, 1000 requests per row, idle machine but for the bench;
PostgreSQL's CPU read from its postmaster's children's times over the whole bench):

                   without a pool (a backend per request)   DICE_DB_POOL=8
    web processes  concurrency  req/s  p50 ms  p99 ms       req/s  p50 ms  p99 ms
                1           50     55     859    1482          45    1032    1826
                1          200     47    4036    5482          39    4744    6482
                2           50     76     648    1032          95     582    1364
                2          200     58    3147    4634          92    1945    3203
    ratio 2:1                   1.37 at 50, 1.24 at 200       2.10 at 50, 2.35 at 200
    PostgreSQL CPU              44.6 s in 78.6 s (0.57 core)  12.9 s

A request costs ~23-50 ms of CPU here, spread over the ORM and DRF serialisation (cProfile: no
single hot spot; 5 queries); the sign-in password check already runs on a pool of its own
(dice_console.security.off_request_thread), so it no longer holds the serving thread.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DICE_ORG_CREATION", "anyone")  # the bench user makes its own organizations


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(data_dir: str) -> str:
    """Migrate, create a user with a few projects, return an API token."""
    os.environ["DICE_DATA_DIR"] = data_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dice_console.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from apps.projects import services

    call_command("migrate", verbosity=0)
    tag = f"bench-web-{os.getpid()}"
    user = get_user_model().objects.create_user(tag, password="right-password")
    org = services.create_organization(user, slug=tag)
    for i in range(5):
        services.create_project(user, org, slug=f"p{i}")
    _, token = services.create_token(user, name="bench")
    from django.db import connections

    connections.close_all()
    return token


def start_server(port: int, workers: int, env: dict, root: Path = ROOT) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "uvicorn", "dice_console.asgi:application", "--host", "127.0.0.1",
           "--port", str(port), "--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen(cmd, cwd=root, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.2)
    stop_server(proc)
    raise SystemExit("uvicorn did not start within 60 s")


def stop_server(proc: subprocess.Popen) -> None:
    """Stop the server we started (its process group: uvicorn's workers are its children)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


async def _request(reader, writer, raw: bytes, closing: bool = False) -> int:
    """Send one request, read its response; the status. A server closing the connection is an
    error, unless the request asked for that (`closing`)."""
    writer.write(raw)
    await writer.drain()
    status_line = await reader.readline()
    length, close = 0, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value.strip())
        elif name.lower() == "connection" and value.strip().lower() == "close":
            close = True
    if length:
        await reader.readexactly(length)
    if close and not closing:
        raise ConnectionResetError("server closed the connection")
    return int(status_line.split()[1])


async def load(port: int, raw: bytes, total: int, concurrency: int) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    remaining = [total]

    async def client():
        nonlocal errors
        reader = writer = None
        while remaining[0] > 0:
            remaining[0] -= 1
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            start = time.perf_counter()
            try:
                status = await _request(reader, writer, raw)
                latencies.append(time.perf_counter() - start)
                if status != 200:
                    errors += 1
            except (ConnectionError, asyncio.IncompleteReadError):
                errors += 1
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, errors


async def _csrf(port: int) -> tuple[str, str]:
    """A fresh session's CSRF cookie and form token from the sign-in page."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    await writer.drain()
    raw = (await reader.read()).decode("utf-8", "replace")
    writer.close()
    cookie = re.search(r"csrftoken=([^;\s]+)", raw)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', raw)
    if not (cookie and token):
        raise SystemExit("the sign-in page gave no CSRF cookie or token")
    return cookie.group(1), token.group(1)


async def bad_logins(port: int, total: int, concurrency: int) -> tuple[list[float], dict[int, int]]:
    """`total` sign-ins with a wrong password, `concurrency` at a time; (latencies, statuses)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    remaining = [total]

    async def client():
        while remaining[0] > 0:
            remaining[0] -= 1
            cookie, token = await _csrf(port)
            body = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "username": "bench-nobody",
                                           "password": "wrong-password"}).encode()
            raw = (f"POST /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: csrftoken={cookie}\r\n"
                   "Content-Type: application/x-www-form-urlencoded\r\n"
                   f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            start = time.perf_counter()
            try:
                status = await _request(reader, writer, raw, closing=True)
            except (ConnectionError, asyncio.IncompleteReadError):
                status = 0
            latencies.append(time.perf_counter() - start)
            statuses[status] = statuses.get(status, 0) + 1
            writer.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, statuses


def _pct(lat: list[float], q: float) -> float:
    lat = sorted(lat)
    return lat[max(0, int(len(lat) * q) - 1)] * 1000


async def api_beside_logins(port: int, raw: bytes, requests: int, concurrency: int, logins: int,
                            login_concurrency: int):
    """The API load alone, then the same load while the bad sign-ins run (started together)."""
    alone, _ = await load(port, raw, requests, concurrency)
    start = time.perf_counter()
    (during, errors), (login_lat, statuses) = await asyncio.gather(
        load(port, raw, requests, concurrency), bad_logins(port, logins, login_concurrency))
    return alone, during, errors, login_lat, statuses, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per scenario")
    parser.add_argument("--path", default="/api/projects/")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--concurrency", type=int, nargs="*", default=[50, 200])
    parser.add_argument("--bad-logins", type=int, default=0, help="measure the API beside N bad sign-ins")
    parser.add_argument("--login-concurrency", type=int, default=40)
    parser.add_argument("--app-root", type=Path, default=ROOT, help="the checkout the server runs")
    args = parser.parse_args()
    if args.bad_logins:
        # Every bad sign-in must cost its password check: no lockout after the first ten.
        os.environ["DICE_LOGIN_FAILURE_LIMIT"] = "1000000"
    with tempfile.TemporaryDirectory() as tmp:
        token = setup(tmp)
        env = {**os.environ, "DICE_DATA_DIR": tmp, "PYTHONPATH": str(args.app_root)}
        if args.bad_logins:
            raw = (f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                   "Accept: application/json\r\n\r\n").encode()
            requests, concurrency = min(args.requests, 400), min(args.concurrency)
            print(f"GET {args.path}, {requests} requests at concurrency {concurrency}; {args.bad_logins} bad "
                  f"sign-ins at concurrency {args.login_concurrency}; server: {args.app_root}")
            for workers in args.workers:
                port = free_port()
                proc = start_server(port, workers, env, args.app_root)
                try:
                    asyncio.run(load(port, raw, 50, 5))
                    alone, during, errors, login_lat, statuses, took = asyncio.run(api_beside_logins(
                        port, raw, requests, concurrency, args.bad_logins, args.login_concurrency))
                finally:
                    stop_server(proc)
                print(f"{workers} web process(es): API alone p50 {statistics.median(alone) * 1000:.0f} ms "
                      f"p99 {_pct(alone, 0.99):.0f} ms; beside the bad sign-ins p50 "
                      f"{statistics.median(during) * 1000:.0f} ms p99 {_pct(during, 0.99):.0f} ms "
                      f"({errors} errors); sign-ins p50 {statistics.median(login_lat) * 1000:.0f} ms, "
                      f"statuses {statuses}, {took:.1f} s", flush=True)
            return
        raw = (f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
               "Accept: application/json\r\n\r\n").encode()
        db = "PostgreSQL" if os.environ.get("DATABASE_URL") else "SQLite (WAL)"
        print(f"database: {db}; GET {args.path}; {args.requests} requests per row")
        header = f"{'web processes':>13} {'concurrency':>11} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}"
        print(header)
        print("-" * len(header))
        rates: dict[tuple[int, int], float] = {}
        for workers in args.workers:
            port = free_port()
            proc = start_server(port, workers, env)
            try:
                asyncio.run(load(port, raw, 100, 10))  # warm every worker's imports and connections
                for concurrency in args.concurrency:
                    start = time.perf_counter()
                    lat, errors = asyncio.run(load(port, raw, args.requests, concurrency))
                    elapsed = time.perf_counter() - start
                    lat.sort()
                    rate = len(lat) / elapsed
                    rates[(workers, concurrency)] = rate
                    print(f"{workers:>13} {concurrency:>11} {rate:>8.0f} {statistics.median(lat) * 1000:>8.0f} "
                          f"{lat[max(0, int(len(lat) * 0.99) - 1)] * 1000:>8.0f} {errors:>6}", flush=True)
            finally:
                stop_server(proc)
        for concurrency in args.concurrency:
            if (1, concurrency) in rates and (2, concurrency) in rates:
                print(f"ratio 2:1 web processes at concurrency {concurrency}: "
                      f"{rates[(2, concurrency)] / rates[(1, concurrency)]:.2f}")


if __name__ == "__main__":
    main()
