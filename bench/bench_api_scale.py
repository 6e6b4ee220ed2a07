"""Bench: list endpoints and pages with a console's worth of history (issue 24 item 5): 10,000 audit
events, 2,000 releases and 1,000 pipeline runs (10 task runs each), then p50/p99 and the SQL query
count of each list, first page and a deep page. Goal: under 100 ms p99, a bounded number of queries.
Not pass/fail (tests/test_page_queries.py holds the query bounds).

    .venv/bin/python bench/bench_api_scale.py [--audit 10000] [--releases 2000] [--runs 1000] [--repeat 40]
    DATABASE_URL=postgres://... .venv/bin/python bench/bench_api_scale.py   # in that database

In-process (Django's test client, no HTTP server): the figures are the console's own time per
request. A temporary SQLite database unless DATABASE_URL is set (then rows are added to it under a
new organization).
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


def populate(args, tag: str):
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from apps.deploy.models import Release
    from apps.deploy.services import create_release
    from apps.pipelines.models import PipelineRun, TaskRun
    from apps.projects import services
    from apps.projects.models import AuditEvent
    from tests.test_page_queries import PIPELINE, SPEC

    owner = get_user_model().objects.create_user(tag, password="pw")
    org = services.create_organization(owner, slug=tag, name=tag)
    project = services.create_project(owner, org, slug="shop")
    app = services.create_application(owner, project, slug="web")
    first = create_release(owner, app, spec_text=SPEC)
    fields = {f.attname: getattr(first, f.attname) for f in Release._meta.concrete_fields
              if f.attname not in ("id", "version", "created")}
    Release.objects.bulk_create([Release(**{**fields, "version": v}) for v in range(2, args.releases + 1)],
                                batch_size=500)
    runs = PipelineRun.objects.bulk_create(
        [PipelineRun(application=app, source=PIPELINE, status="success", created_by=owner,
                     finished=timezone.now()) for _ in range(args.runs)], batch_size=500)
    TaskRun.objects.bulk_create([TaskRun(run=run, alias=f"t{i}", type="custom-script", status="success",
                                         position=i, stage=i // 5) for run in runs for i in range(10)],
                                batch_size=2000)
    AuditEvent.objects.bulk_create(
        [AuditEvent(actor=owner, actor_name=owner.username, organization=org, project=project, application=app,
                    action="update", object_type="release", object_id=str(i), object_repr=f"release {i}",
                    before={"n": i}, after={"n": i + 1}) for i in range(args.audit)], batch_size=1000)
    return owner, org, project, app


def measure(client, url: str, repeat: int, token: str | None = None):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        response = client.get(url, **headers)
        samples.append(1000 * (time.perf_counter() - t0))
        assert response.status_code == 200, (url, response.status_code, response.content[:300])
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, **headers)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))], len(queries), \
        len(response.content) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audit", type=int, default=10000)
    parser.add_argument("--releases", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("DICE_DATA_DIR", tmp)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dice_console.settings")
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connection
        from django.test import Client

        from apps.projects import services

        call_command("migrate", verbosity=0)
        settings.ALLOWED_HOSTS = ["*"]
        tag = f"benchscale{os.getpid()}"
        started = time.perf_counter()
        owner, org, project, app = populate(args, tag)
        print(f"database: {connection.vendor}; populated {args.audit} audit events, {args.releases} releases, "
              f"{args.runs} runs x 10 tasks in {time.perf_counter() - started:.1f} s")
        _, token = services.create_token(owner, name="bench")
        client = Client()
        client.force_login(owner)
        base = f"/orgs/{tag}/shop/web/"
        targets = [
            ("API audit-events", f"/api/audit-events/?org={tag}", True),
            ("API audit-events offset 9000", f"/api/audit-events/?org={tag}&offset=9000", True),
            ("API releases", f"/api/releases/?application={app.pk}", True),
            ("API releases offset 1900", f"/api/releases/?application={app.pk}&offset=1900", True),
            ("API pipeline-runs", f"/api/pipeline-runs/?application={app.pk}", True),
            ("API pipeline-runs offset 900", f"/api/pipeline-runs/?application={app.pk}&offset=900", True),
            ("page audit", "/audit/", False),
            ("page audit, page 150", "/audit/?page=150", False),
            ("page releases", base + "releases/", False),
            ("page releases, page 40", base + "releases/?page=40", False),
            ("page pipelines (runs)", base + "pipelines/", False),
            ("page all runs", "/pipelines/", False),
        ]
        print(f"{'list':<32} {'p50 ms':>8} {'p99 ms':>8} {'queries':>8} {'KB':>6}")
        for name, url, api in targets:
            p50, p99, queries, size = measure(client, url, args.repeat, token if api else None)
            print(f"{name:<32} {p50:8.1f} {p99:8.1f} {queries:8d} {size:6.0f}", flush=True)


if __name__ == "__main__":
    main()
