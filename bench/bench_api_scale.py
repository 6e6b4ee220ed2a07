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


def measure(client, url: str, repeat: int, token: str | None):
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
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, **headers)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return statistics.median(samples), p99, statistics.median(cpu), list(queries), len(response.content) / 1024


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


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run(args) -> None:
    from django.db import connection
    from django.test import Client

    from apps.projects import services

    started = time.perf_counter()
    admin, member, app = populate(args)
    from dice_console.heap import settle_heap

    settle_heap()  # as a web process does once started (dice_console/asgi.py)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    else:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    print(f"database: {connection.vendor}; acme: {args.audit} audit events, {args.releases} releases and "
          f"deployments, {args.runs} runs x 10 tasks, 100 runtimes; as many again over {args.orgs} other "
          f"organizations; populated in {time.perf_counter() - started:.1f} s; load average {load()}", flush=True)
    for who, user in (("admin", admin), ("member", member)):
        _, token = services.create_token(user, name="bench")
        client = Client()
        client.force_login(user)
        print(f"\n{who}: {'list':<34} {'p50 ms':>8} {'p99 ms':>8} {'cpu p50':>8} {'queries':>8} {'KB':>6}")
        worst = []
        for name, url, api in targets(app, args):
            p50, p99, cpu, queries, size = measure(client, url, args.repeat, token if api else None)
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
                               else str(Path(tmp) / "bench.sqlite3"))}
        old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        try:
            run(args)
        finally:
            if args.keep:
                print(f"kept the database {connection.settings_dict['NAME']}")
            else:
                connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
