"""Figures for the pages people keep open: render time (p50, p99) and SQL queries of the runtime page
with a long history, the pipelines page, the run page of a wide run, and /api/schema/ (cold and from
memory). A temporary SQLite database; not pass/fail.

    .venv/bin/python bench/bench_pages.py [--tasks 1000] [--deployments 50] [--repeat 30] [--only run]
                                          [--no-schema]

The run is under way (half its tasks done, a stage running): "refresh, whole" is what the run
page fetched every 1.5 s before it followed pushes; "10 rows (push)" what it fetches now when a
push names 10 tasks. "CPU p50" is this process's CPU per request, which the other engineers'
load on this shared machine does not inflate.

Figures (issue 25, 2026-12-07, load 14-20, `--only run --no-schema --repeat 15`, main and the
perf branch alternated twice; wall p50 / CPU p50):

    run page (1000 tasks)           main 1751 / 189, 381 / 160 ms    perf 83 / 43, 46 / 39 ms
    refresh, whole body             main  414 / 157, 223 / 146 ms    perf 69 / 40, 66 / 37 ms
    refresh, 10 rows (push)         (main has none: it refreshed the whole body every 1.5 s)
                                                                      perf 29 / 13, 19 / 10 ms, 6 KB
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
os.environ.setdefault("DICE_ORG_CREATION", "anyone")  # the bench user makes its own organizations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000, help="tasks of the wide run")
    parser.add_argument("--deployments", type=int, default=50, help="history of the runtime")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--only", default="", help="pages whose name contains this text (e.g. 'run')")
    parser.add_argument("--no-schema", action="store_true", help="skip /api/schema/'s first build")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DICE_DATA_DIR"] = tmp
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dice_console.settings")
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        settings.ALLOWED_HOSTS = ["*"]
        settings.DICE_LOCAL_ROOT = os.path.join(tmp, "local")
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        from apps.clusters.models import Cluster
        from apps.deploy.models import Deployment, DeploymentTransition, Runtime
        from apps.deploy.services import create_release
        from apps.pipelines.models import PipelineRun, TaskRun
        from apps.projects import services
        from dice_console.schema import CachedSchemaView
        from tests.test_page_queries import PIPELINE, SPEC

        owner = get_user_model().objects.create_user("bench", password="pw")
        org = services.create_organization(owner, slug="acme", name="acme")
        project = services.create_project(owner, org, slug="shop")
        app = services.create_application(owner, project, slug="web")
        release = create_release(owner, app, spec_text=SPEC)
        runtime = Runtime.objects.create(application=app, workspace=project.workspaces.get(kind="DEV"), name="main",
                                         cluster=Cluster.objects.get(name="local"), release=release)
        for _ in range(args.deployments):
            d = Deployment.objects.create(runtime=runtime, release=release, status="superseded", created_by=owner)
            DeploymentTransition.objects.create(deployment=d, from_status="queued", to_status="superseded")
        # A run under way, as a viewer keeps it open: 10 stages of 100, half done, one running.
        from django.utils import timezone

        now = timezone.now()
        run = PipelineRun.objects.create(application=app, source=PIPELINE, status="running", created_by=owner,
                                         started=now)
        half = args.tasks // 2

        def task(i: int) -> TaskRun:
            done, running = i < half, half <= i < half + 100
            return TaskRun(run=run, alias=f"t{i}", type="custom-script", position=i, stage=i // 100,
                           needs=[f"t{i - 100}"] if i >= 100 else [],
                           status="success" if done else "running" if running else "queued",
                           started=now if done or running else None, finished=now if done else None,
                           outputs={"built": f"a{i}"} if done else {}, last_line=3 if done else 0)

        TaskRun.objects.bulk_create(task(i) for i in range(args.tasks))
        for _ in range(25):
            PipelineRun.objects.create(application=app, source=PIPELINE, status="success", created_by=owner)
        client = Client()
        client.force_login(owner)
        base = "/orgs/acme/shop/web/"
        pages = {
            f"runtime page ({args.deployments} deployments)": base + "runtimes/DEV/main/",
            "pipelines page (25 runs)": base + "pipelines/",
            f"run page ({args.tasks} tasks)": base + f"pipelines/runs/{run.pk}/",
            f"run page refresh, whole ({args.tasks})": base + f"pipelines/runs/{run.pk}/?partial=1",
            "run page refresh, 10 rows (push)": base + f"pipelines/runs/{run.pk}/?rows="
            + ",".join(f"t{half + i}" for i in range(10)),
            "/api/schema/ (from memory)": "/api/schema/",
        }
        pages = {name: url for name, url in pages.items() if args.only in name}
        if not args.no_schema:
            CachedSchemaView.clear()
            start = time.perf_counter()
            client.get("/api/schema/")
            print(f"{'/api/schema/ (first build)':<34} {1000 * (time.perf_counter() - start):8.1f} ms")
        print(f"{'page':<36} {'p50 ms':>8} {'p99 ms':>8} {'CPU p50':>8} {'queries':>8} {'KB':>8}")
        for name, url in pages.items():
            samples, cpu = [], []
            for _ in range(args.repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                response = client.get(url)
                samples.append(1000 * (time.perf_counter() - t0))
                cpu.append(1000 * (time.process_time() - c0))  # this process's CPU: what load does not inflate
                assert response.status_code == 200, (url, response.status_code)
            with CaptureQueriesContext(connection) as queries:
                response = client.get(url)
            samples.sort()
            p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
            print(f"{name:<36} {statistics.median(samples):8.1f} {p99:8.1f} {statistics.median(cpu):8.1f} "
                  f"{len(queries):8d} {len(response.content) / 1024:8.0f}")


if __name__ == "__main__":
    main()
