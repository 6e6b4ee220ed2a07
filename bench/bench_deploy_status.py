"""Figures for the deploy app: how long the deployments list and a runtime's live status take as
the history grows, and how long one rollout takes to be followed to healthy (fake executor, so the
figures are the console's own cost). Prints a table; not pass/fail.

    .venv/bin/python bench/bench_deploy_status.py [--runtimes 20] [--deployments 10]
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


def setup_django(data_dir: str) -> None:
    os.environ["DICE_DATA_DIR"] = data_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dice_console.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def timed(fn, repeat: int = 5) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtimes", type=int, default=20)
    parser.add_argument("--deployments", type=int, default=10, help="per runtime")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        setup_django(tmp)
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.db import connection
        from rest_framework.test import APIClient

        from apps.clusters.models import Cluster
        from apps.deploy import deployments
        from apps.deploy.services import create_release
        from apps.deploy.tasks import run_deployment
        from apps.projects import services
        from apps.projects.models import Workspace
        from tests.test_deployments_support import FAKE, SPEC

        settings.DICE_DEPLOY_POLL_INTERVAL = 0.001
        user = get_user_model().objects.create_user("bench")
        org = services.create_organization(user, slug="bench")
        project = services.create_project(user, org, slug="p")
        app = services.create_application(user, project, slug="a")
        cluster = Cluster.objects.create(name="fake", kind="fake")
        Workspace.objects.filter(project=project).update(cluster=cluster, cpu_quota=10_000, mem_quota=10**8)
        release = create_release(user, app, spec_text=SPEC)
        api = APIClient()
        api.force_authenticate(user)

        rollout_ms = []
        for r in range(args.runtimes):
            for _ in range(args.deployments):
                d = deployments.deploy(user, app, "DEV", release=release, runtime_name=f"rt-{r}")
                start = time.perf_counter()
                run_deployment(d.pk)
                rollout_ms.append((time.perf_counter() - start) * 1000)
        runtime_id = d.runtime_id
        total = args.runtimes * args.deployments
        def queries(fn) -> int:
            count = [0]

            def counter(execute, sql, params, many, context):
                count[0] += 1
                return execute(sql, params, many, context)

            with connection.execute_wrapper(counter):
                fn()
            return count[0]

        q_list = queries(lambda: api.get("/api/deployments/", {"limit": 50}))
        q_rt = queries(lambda: api.get(f"/api/runtimes/{runtime_id}/"))
        rows = [
            ("deployments followed to healthy (median, ms)", f"{statistics.median(rollout_ms):.1f}"),
            (f"GET /api/deployments/?limit=50 of {total} (ms)", f"{timed(lambda: api.get('/api/deployments/', {'limit': 50})):.1f}"),
            ("  queries", str(q_list)),
            (f"GET /api/runtimes/ of {args.runtimes} (ms)", f"{timed(lambda: api.get('/api/runtimes/')):.1f}"),
            ("GET /api/runtimes/<id>/ with live status (ms)", f"{timed(lambda: api.get(f'/api/runtimes/{runtime_id}/')):.1f}"),
            ("  queries", str(q_rt)),
        ]
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            print(f"{key.ljust(width)}  {value}")
        FAKE.reset()


if __name__ == "__main__":
    main()
