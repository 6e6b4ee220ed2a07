"""Bench: list endpoints and pages with a console's worth of history (issue 24 item 5).

One organization ("acme") holds 10,000 audit events, 2,000 releases with a deployment each, 1,000
pipeline runs (10 task runs each) and 100 runtimes; `--orgs` other organizations hold as many rows
again between them. Each list is read, first page, middle and last, by a platform admin (who sees
every organization) and by an ordinary member of acme (developer at organization level, who sees
acme only): p50 and p99 of the console's time per request, and the SQL queries of one request.
Goal: under 100 ms p99 and a query count that does not grow with rows. Figures, not pass/fail
(tests/test_list_scale.py holds the query and plan checks).

    .venv/bin/python bench/bench_api_scale.py [--audit 10000] [--releases 2000] [--runs 1000] [--orgs 50]
                                              [--repeat 40] [--explain] [--only audit,releases]
    DATABASE_URL=postgres://.../dice_hK .venv/bin/python bench/bench_api_scale.py   # PostgreSQL

In-process (Django's test client, no HTTP server): the figures are the console's own time per
request. On SQLite a temporary database file; on PostgreSQL a fresh database named after
DATABASE_URL's with `_bench` appended, dropped at the end. `--explain` prints the plan of the
slowest query of each list (EXPLAIN ANALYZE on PostgreSQL, EXPLAIN QUERY PLAN on SQLite).

`--serve`: the same lists over HTTP/1.1 keep-alive from a started `uvicorn dice_console.asgi:application`
(the README's production web command) on the bench database; per row its collector's full passes,
their worst pause and all passes' time (DICE_GC_STATS, read with SIGUSR1), and the server's RSS.
On PostgreSQL both modes end with the index scans of the big tables (pg_stat_user_indexes).

Figures, PostgreSQL (dice_hK), --repeat 100 --serve, 8,686 requests each (p99 is the worst of 100),
2026-12-07 on the shared 2-core machine (load average from the other engineers' work beside each):
  before (interpreter thresholds 700,10,10, startup frozen), load 3.1-3.7: 18 of 88 rows over 100 ms,
    median row p99 54 ms, p50 30 ms; collector 9.8 s in all: 14,318 young (max 32 ms), 1,301
    middle (max 65 ms), 117 full passes (3.0 s, max 121 ms); RSS 113 -> 131 MiB.
  young generation of 20,000, load 3.2-5.2: 49 rows over 100 ms; collector 11.6 s (young passes
    ~21 ms each: they walked the live objects of the request they interrupted).
  young+middle collected at each idle moment, thresholds 700,100,100, load 2.9-4.9: 36 rows over
    100 ms; collector 10.3 s (6.5 s of middle passes over several requests' cyclic garbage).
  kept: collected when idle (young; middle every 10th, full every 100th), backstop 10,000,10,10,
    first 200 requests frozen: load 2.3-2.9 (admin half) 1 of 44 rows over 100 ms (180 ms, no
    collection in that row), load up to 7.6 (member half) 12 of 44; collector 6.9 s: 1,222 young,
    123 middle, 14 full passes (0.33 s); RSS 112 -> 131 MiB. Again at load 4.9-7.6: 54 rows over
    100 ms, collector 6.7 s, 26 full passes (0.40 s), RSS 112 -> 131 MiB.
Idle machine (load 1.1-1.3, the bench alone), 2026-12-07, main after the merge of the policy above:
  --serve: every row under 100 ms: worst p99 80.3 ms (admin, deployments page p1) and 70.5 ms
    (member, API deployments @1975), p50 14-44 ms; collector 992 young (max 24 ms), 95 middle, 8 full
    (max 46 ms); RSS 109 -> 129 MiB.
  in-process: worst p99 31.2 ms (admin) and 37.1 ms (member).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DICE_ORG_CREATION", "anyone")


def _denormalised(model, application) -> dict:
    """The organization and project columns a model keeps beside its application, where it has them
    (bulk_create skips save(), which fills them)."""
    names = {f.attname for f in model._meta.concrete_fields}
    extra = {}
    if "scope_organization_id" in names:
        extra["scope_organization_id"] = application.project.organization_id
    if "scope_project_id" in names:
        extra["scope_project_id"] = application.project_id
    return extra


def populate_org(owner, slug: str, *, audit: int, releases: int, runs: int, runtimes: int):
    """One organization with one project and application, and the given numbers of rows."""
    from django.utils import timezone

    from apps.clusters.models import Cluster
    from apps.deploy.models import Deployment, Release, Runtime
    from apps.deploy.services import create_release
    from apps.pipelines.models import PipelineRun, TaskRun
    from apps.projects import services
    from apps.projects.models import AuditEvent
    from tests.test_page_queries import PIPELINE, SPEC

    org = services.create_organization(owner, slug=slug, name=slug)
    project = services.create_project(owner, org, slug="shop")
    app = services.create_application(owner, project, slug="web")
    first = create_release(owner, app, spec_text=SPEC)
    fields = {f.attname: getattr(first, f.attname) for f in Release._meta.concrete_fields
              if f.attname not in ("id", "version", "created")}
    Release.objects.bulk_create([Release(**{**fields, "version": v}) for v in range(2, releases + 1)], batch_size=500)
    workspace = project.workspaces.get(kind="DEV")
    cluster = Cluster.objects.get(name="local")
    made = Runtime.objects.bulk_create(
        [Runtime(application=app, workspace=workspace, cluster=cluster, name=f"rt{i}", release=first,
                 **_denormalised(Runtime, app)) for i in range(runtimes)], batch_size=500)
    if made:
        release_ids = list(Release.objects.filter(application=app).values_list("pk", flat=True))
        Deployment.objects.bulk_create(
            [Deployment(runtime=made[i % len(made)], release_id=rid, status="superseded", created_by=owner,
                        created_by_name=owner.username, **_denormalised(Deployment, app))
             for i, rid in enumerate(release_ids)], batch_size=500)
    made_runs = PipelineRun.objects.bulk_create(
        [PipelineRun(application=app, source=PIPELINE, status="success", created_by=owner,
                     created_by_name=owner.username, finished=timezone.now(), **_denormalised(PipelineRun, app))
         for _ in range(runs)], batch_size=500)
    TaskRun.objects.bulk_create([TaskRun(run=run, alias=f"t{i}", type="custom-script", status="success",
                                         position=i, stage=i // 5) for run in made_runs for i in range(10)],
                                batch_size=2000)
    AuditEvent.objects.bulk_create(
        [AuditEvent(actor=owner, actor_name=owner.username, organization=org, project=project, application=app,
                    action="update", object_type="release", object_id=str(i), object_repr=f"release {i}",
                    before={"n": i}, after={"n": i + 1}) for i in range(audit)], batch_size=1000)
    return org, project, app


def populate(args):
    from django.contrib.auth import get_user_model

    from apps.projects import services

    User = get_user_model()
    admin = User.objects.create_user("bench-admin", password="pw", is_superuser=True, is_staff=True)
    owner = User.objects.create_user("bench-owner", password="pw")
    org, project, app = populate_org(owner, "acme", audit=args.audit, releases=args.releases, runs=args.runs,
                                     runtimes=100)
    others = max(args.orgs, 1)
    for n in range(args.orgs):  # as many rows again, spread over the other organizations
        other_owner = User.objects.create_user(f"bench-owner{n}", password="pw")
        populate_org(other_owner, f"other{n}", audit=args.audit // others, releases=max(args.releases // others, 1),
                     runs=args.runs // others, runtimes=100 // others)
    member = User.objects.create_user("bench-member", password="pw")
    services.add_member(owner, org, username=member.username, role="developer")
    return admin, member, app


def targets(app, args) -> list[tuple[str, str, bool]]:
    """(name, url, is_api) of each list, each at its first, middle and last page."""
    out = []
    per_page = 25
    apis = [
        ("audit", "/api/audit-events/?", args.audit),
        ("audit acme", "/api/audit-events/?org=acme&", args.audit),
        ("releases app", f"/api/releases/?application={app.pk}&", args.releases),
        ("releases", "/api/releases/?", args.releases),
        ("deployments", "/api/deployments/?", args.releases),
        ("runtimes", "/api/runtimes/?", 100),
        ("pipeline-runs app", f"/api/pipeline-runs/?application={app.pk}&", args.runs),
        ("pipeline-runs", "/api/pipeline-runs/?", args.runs),
        ("task-runs", "/api/task-runs/?", args.runs * 10),
    ]
    for name, url, rows in apis:
        for offset in (0, rows // 2, rows - per_page):
            out.append((f"API {name} @{offset}", f"{url}limit={per_page}&offset={offset}", True))
    base = "/orgs/acme/shop/web/"
    pages = [
        ("audit", "/audit/?", args.audit),
        ("releases", base + "releases/?", args.releases),
        ("deployments", "/deployments/?", args.releases),
        ("runtimes", base + "runtimes/?", 100),
        ("runs", "/pipelines/?", args.runs),
    ]
    for name, url, rows in pages:
        last = max(rows // per_page, 1)
        for page in (1, last // 2 or 1, last):
            out.append((f"page {name} p{page}", f"{url}page={page}", False))
    out.append(("page pipelines (app)", base + "pipelines/", False))
    return [t for t in out if not args.only or any(word in t[0] for word in args.only.split(","))]


def measure(client, url: str, repeat: int, token: str | None, idle=None):
    """p50, p99 of the console's time per request; `idle` (heap.Idle) collects between requests,
    untimed, as the web process does once a response is sent (heap.CollectWhenIdle)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    client.get(url, **headers)  # warm
    samples, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        response = client.get(url, **headers)
        samples.append(1000 * (time.perf_counter() - t0))
        cpu.append(1000 * (time.process_time() - c0))
        assert response.status_code == 200, (url, response.status_code, response.content[:300])
        del response
        if idle is not None:
            idle.collect()
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, **headers)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return statistics.median(samples), p99, statistics.median(cpu), list(queries), len(response.content) / 1024


class Served:
    """A started `uvicorn dice_console.asgi:application` (the README's production web command) on
    the bench database, read over HTTP/1.1 keep-alive by one client; its collector's pauses come
    from DICE_GC_STATS (dice_console.heap.watch_collections), asked for with SIGUSR1."""

    def __init__(self, tmp: str, extra_env: dict):
        import socket
        import subprocess

        from django.db import connection, connections

        connections.close_all()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.stats_path = Path(tmp) / "gc-stats.json"
        from django.conf import settings

        env = {**os.environ, "DICE_DATA_DIR": str(settings.DATA_DIR), "DICE_LOCAL_SUPERVISE": "0",
               "DICE_GC_STATS": str(self.stats_path), **extra_env}
        if connection.vendor == "postgresql":
            base = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
            env["DATABASE_URL"] = f"{base}/{connection.settings_dict['NAME']}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "dice_console.asgi:application", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning", "--no-access-log"],
            cwd=ROOT, env=env, start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if self.proc.poll() is not None:
                    raise SystemExit("uvicorn exited at start") from None
                time.sleep(0.2)
        else:
            self.stop()
            raise SystemExit("uvicorn did not start within 90 s")
        self.seq = 0

    def connect(self):
        import http.client

        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def gc(self) -> dict:
        """The server's collector totals now (it writes them on SIGUSR1)."""
        import json
        import signal

        os.kill(self.proc.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                data = json.loads(self.stats_path.read_text())
            except (OSError, ValueError):
                data = {"seq": -1}
            if data["seq"] > self.seq:
                self.seq = data["seq"]
                return data
            time.sleep(0.005)
        raise SystemExit("the server did not write its collector totals (DICE_GC_STATS)")

    def stop(self) -> None:
        import signal
        import subprocess

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def measure_served(conn, url: str, repeat: int, headers: dict):
    """p50, p99 of the client's time per request over HTTP (the server's CPU is not ours to time)."""

    def get():
        conn.request("GET", url, headers=headers)
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, (url, response.status, body[:300])
        return body

    get()  # warm
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        body = get()
        samples.append(1000 * (time.perf_counter() - t0))
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return statistics.median(samples), p99, len(body) / 1024


def gc_delta(before: dict, after: dict) -> tuple[int, float, float, float]:
    """Collections of the oldest generation, their worst pause, and all pauses' total and worst (ms)."""
    old = after["generations"][2]
    full = old["count"] - before["generations"][2]["count"]
    total = sum(a["total_ms"] - b["total_ms"] for a, b in zip(after["generations"], before["generations"],
                                                               strict=True))
    worst = max(a["window_max_ms"] for a in after["generations"])
    return full, old["window_max_ms"], total, worst


def explain(queries) -> str:
    """The plan of the slowest query the request ran."""
    from django.db import connection

    slowest = max(queries, key=lambda q: float(q["time"]))
    sql = slowest["sql"]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING ON, SUMMARY ON) " + sql)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql)
        rows = cursor.fetchall()
    plan = "\n".join("      " + " ".join(str(c) for c in row if c is not None) for row in rows)
    return f"    {sql[:400]}{' ...' if len(sql) > 400 else ''}\n{plan}"


INDEXED_TABLES = ("projects_auditevent", "deploy_deployment", "deploy_release", "pipelines_pipelinerun",
                  "pipelines_taskrun")


def index_usage() -> str:
    """PostgreSQL: how often each index of the big tables was scanned since the lists began."""
    from django.db import connection

    time.sleep(1.5)  # backends report their counts when idle
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, indexrelname, idx_scan FROM pg_stat_user_indexes WHERE relname = ANY(%s) "
                       "ORDER BY relname, indexrelname", [list(INDEXED_TABLES)])
        rows = cursor.fetchall()
    return "\n".join(f"    {table:<24} {index:<56} {scans:>8}" for table, index, scans in rows)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_served(args, tmp: str, admin, member, app) -> None:
    """The same lists through a started uvicorn process (--serve)."""
    from django.test import Client

    from apps.projects import services

    tokens, sessions = {}, {}
    for who, user in (("admin", admin), ("member", member)):
        _, tokens[who] = services.create_token(user, name="bench")
        client = Client()
        client.force_login(user)
        sessions[who] = client.cookies["sessionid"].value
    extra = dict(kv.split("=", 1) for kv in args.server_env)
    server = Served(tmp, extra)
    try:
        started_rss = server.rss_mib()
        print(f"server: uvicorn pid {server.proc.pid}, RSS {started_rss:.0f} MiB at start"
              f"{'; env ' + ' '.join(args.server_env) if args.server_env else ''}", flush=True)
        first = server.gc()
        print(f"server: collector thresholds {first['threshold']}, frozen {first['frozen']}, "
              f"tracked {first['tracked']}", flush=True)
        requests = 0
        for who in ("admin", "member"):
            conn = server.connect()
            print(f"\n{who}: {'list':<34} {'p50 ms':>8} {'p99 ms':>8} {'full gc':>8} {'gc2 max':>8} "
                  f"{'gc ms':>7} {'KB':>6} {'RSS MiB':>8}")
            worst = []
            for name, url, api in targets(app, args):
                headers = ({"Authorization": f"Bearer {tokens[who]}"} if api
                           else {"Cookie": f"sessionid={sessions[who]}"})
                before = server.gc()
                p50, p99, size = measure_served(conn, url, args.repeat, headers)
                requests += args.repeat + 1
                full, full_max, total, _ = gc_delta(before, server.gc())
                worst.append(p99)
                print(f"{who}: {name:<34} {p50:8.1f} {p99:8.1f} {full:8d} {full_max:8.1f} {total:7.1f} "
                      f"{size:6.0f} {server.rss_mib():8.0f}", flush=True)
            conn.close()
            print(f"{who}: worst p99 {max(worst):.1f} ms; load average {load()}", flush=True)
        end = server.gc()
        gens = ", ".join(f"gen{i} {g['count']} x (max {g['max_ms']:.1f}, total {g['total_ms']:.0f} ms)"
                         for i, g in enumerate(end["generations"]))
        print(f"\nserver: {requests} requests; RSS {started_rss:.0f} -> {server.rss_mib():.0f} MiB; "
              f"collections {gens}; tracked {end['tracked']}", flush=True)
    finally:
        server.stop()


def run(args, tmp: str) -> None:
    from django.db import connection


    started = time.perf_counter()
    admin, member, app = populate(args)
    from dice_console.heap import settle_heap

    settle_heap()  # as a web process does once started (dice_console/asgi.py)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
            cursor.execute("SELECT pg_stat_reset()")  # index_usage counts the lists' scans only
    else:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    print(f"database: {connection.vendor}; acme: {args.audit} audit events, {args.releases} releases and "
          f"deployments, {args.runs} runs x 10 tasks, 100 runtimes; as many again over {args.orgs} other "
          f"organizations; populated in {time.perf_counter() - started:.1f} s; load average {load()}", flush=True)
    if args.serve:
        run_served(args, tmp, admin, member, app)
    else:
        run_in_process(args, admin, member, app)
    if connection.vendor == "postgresql":
        print(f"\nindex scans during the lists (pg_stat_user_indexes):\n{index_usage()}", flush=True)


def run_in_process(args, admin, member, app) -> None:
    from django.test import Client

    from apps.projects import services
    from dice_console.heap import Idle, settle_heap, tune_collector

    tune_collector()  # the web process's collector policy (dice_console/asgi.py)
    clients = {}
    for who, user in (("admin", admin), ("member", member)):
        _, token = services.create_token(user, name="bench")
        client = Client()
        client.force_login(user)
        clients[who] = (client, token)
        for _, url, api in targets(app, args):  # its first requests, then frozen (heap.CollectWhenIdle)
            client.get(url, **({"HTTP_AUTHORIZATION": f"Bearer {token}"} if api else {}))
    settle_heap()
    idle = Idle(warmup=0)
    for who in ("admin", "member"):
        client, token = clients[who]
        print(f"\n{who}: {'list':<34} {'p50 ms':>8} {'p99 ms':>8} {'cpu p50':>8} {'queries':>8} {'KB':>6}")
        worst = []
        for name, url, api in targets(app, args):
            p50, p99, cpu, queries, size = measure(client, url, args.repeat, token if api else None, idle)
            worst.append(p99)
            print(f"{who}: {name:<34} {p50:8.1f} {p99:8.1f} {cpu:8.1f} {len(queries):8d} {size:6.0f}", flush=True)
            if args.explain:
                print(explain(queries), flush=True)
        print(f"{who}: worst p99 {max(worst):.1f} ms; load average {load()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audit", type=int, default=10000)
    parser.add_argument("--releases", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--orgs", type=int, default=50, help="other organizations, holding as many rows again")
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--explain", action="store_true", help="print the plan of each list's slowest query")
    parser.add_argument("--keep", action="store_true", help="leave the bench database for EXPLAIN by hand")
    parser.add_argument("--only", default="", help="comma-separated words: only the lists whose name has one")
    parser.add_argument("--serve", action="store_true",
                        help="read the lists over HTTP from a started uvicorn process (production's web command)")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="with --serve: an environment variable for the server (repeatable)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("DICE_DATA_DIR", tmp)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dice_console.settings")
        import django

        django.setup()
        from django.conf import settings
        from django.db import connection

        settings.ALLOWED_HOSTS = ["*"]
        db = settings.DATABASES["default"]
        db["TEST"] = {**connection.settings_dict.get("TEST", {}), "MIGRATE": True,
                      "NAME": (f"{db['NAME']}_bench" if connection.vendor == "postgresql"
                               else str(settings.DATA_DIR / "dice.sqlite3"))}  # the server's, with --serve
        old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        try:
            run(args, tmp)
        finally:
            if args.keep:
                print(f"kept the database {connection.settings_dict['NAME']}")
            else:
                connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
