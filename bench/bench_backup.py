"""Backup and restore time of a populated console: organizations, releases with their files,
pipeline runs with log lines, secret configs. Backs it up (`manage.py backup`, in this process)
and restores it into an empty console (`manage.py restore` in a fresh process with its own data
folder, as an operator would), then checks row counts and a secret. Prints a table; not pass/fail.

    .venv/bin/python bench/bench_backup.py                     # SQLite (temporary data folders)
    .venv/bin/python bench/bench_backup.py --runs 200 --lines 2000
    DATABASE_URL=postgres://dice:dice@127.0.0.1:55432/dice_bench .venv/bin/python bench/bench_backup.py
        # PostgreSQL: the database is emptied and filled; restored into <name>_restore (made and dropped)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DICE_ORG_CREATION", "anyone")  # the bench user makes its own organizations

COUNT = """
import json, os, django
os.environ["DJANGO_SETTINGS_MODULE"] = "dice_console.settings"
django.setup()
from django.apps import apps
from apps.pipelines.models import ProjectConfig
counts = {m._meta.label: m.objects.count() for m in apps.get_models()}
secret = ProjectConfig.objects.filter(secret=True).first().plain_value()
print("COUNTS " + json.dumps({"counts": counts, "secret": secret}))
"""


def setup_django(data_dir: str) -> None:
    os.environ["DICE_DATA_DIR"] = data_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dice_console.settings")
    import django

    django.setup()
    from django.core.management import call_command

    if os.environ.get("DATABASE_URL"):
        call_command("flush", "--no-input", verbosity=0)
    call_command("migrate", verbosity=0)


def populate(args, work: Path) -> None:
    from django.contrib.auth import get_user_model

    from apps.deploy import bundles
    from apps.deploy import services as deploy_services
    from apps.pipelines import services as pipeline_services
    from apps.pipelines import steplogs
    from apps.pipelines.models import PipelineRun, TaskRun
    from apps.projects import services

    spec = "version: '2.0'\nservices:\n  web:\n    image: registry.example/web:1\n    ports: [8080]\n"
    owner = get_user_model().objects.create_superuser("owner", password="pw")
    apps_made = []
    for o in range(args.orgs):
        org = services.create_organization(owner, slug=f"org{o}")
        project = services.create_project(owner, org, slug="shop")
        pipeline_services.set_config(owner, project, key="DB_PASSWORD", value=f"secret-{o}", secret=True)
        apps_made.append(services.create_application(owner, project, slug="web", repo_url="https://git.example/a"))
    folder = work / "files"
    folder.mkdir()
    (folder / "dice.yml").write_text(spec)
    for r in range(args.releases):
        (folder / "main.py").write_text(f"# release {r}\n" + "print('hello world')\n" * 1000)
        release = deploy_services.create_release(owner, apps_made[r % len(apps_made)], spec_text=spec)
        bundles.attach_bundle(release, bundles.make_archive(folder))
    text = "2026-12-06T18:00:00Z INFO building step output, a typical line of a build log #{n}"
    for r in range(args.runs):
        run = PipelineRun.objects.create(application=apps_made[r % len(apps_made)], source="version: '1.1'\n",
                                         status="success")
        for t in range(args.tasks):
            task = TaskRun.objects.create(run=run, alias=f"step{t}", type="custom-script", status="success")
            steplogs.append_lines(task, [text.format(n=n) for n in range(args.lines)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orgs", type=int, default=20)
    parser.add_argument("--releases", type=int, default=200)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=5, help="steps per run")
    parser.add_argument("--lines", type=int, default=1000, help="log lines per step")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dice-bench-backup-") as tmp:
        work = Path(tmp)
        setup_django(str(work / "source"))
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connection

        started = time.monotonic()
        populate(args, work)
        fill_s = time.monotonic() - started

        started = time.monotonic()
        call_command("backup", str(work / "backup"), stdout=open(os.devnull, "w"))  # noqa: SIM115
        backup_s = time.monotonic() - started
        manifest = json.loads((work / "backup" / "manifest.json").read_text())
        size = sum(f["size"] for f in manifest["files"])

        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
        env["DICE_DATA_DIR"] = str(work / "target")
        scratch = None
        if connection.vendor == "postgresql":
            import psycopg

            url = urlsplit(os.environ["DATABASE_URL"])
            scratch = url.path.strip("/") + "_restore"
            admin = psycopg.connect(urlunsplit(url._replace(path="/postgres")), autocommit=True)
            admin.execute(f'DROP DATABASE IF EXISTS "{scratch}"')
            admin.execute(f'CREATE DATABASE "{scratch}"')
            env["DATABASE_URL"] = urlunsplit(url._replace(path="/" + scratch))
        try:
            started = time.monotonic()
            done = subprocess.run([sys.executable, "manage.py", "restore", str(work / "backup")], cwd=ROOT, env=env,
                                  capture_output=True, text=True)
            restore_s = time.monotonic() - started
            if done.returncode != 0:
                raise SystemExit(f"restore failed: {done.stderr}")
            inside = done.stdout.strip().splitlines()[-1]
            check = subprocess.run([sys.executable, "-c", COUNT], cwd=ROOT, env=env, capture_output=True, text=True)
            found = json.loads(next(ln for ln in check.stdout.splitlines() if ln.startswith("COUNTS "))[7:])
        finally:
            if scratch:
                admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
                admin.close()
        from django.apps import apps

        expected = {m._meta.label: m.objects.count() for m in apps.get_models()}
        ok = found["counts"] == expected and found["secret"] == "secret-0"
        lines = args.runs * args.tasks * args.lines
        print(f"database: {connection.vendor} ({settings.DATABASES['default']['NAME']})")
        print(f"populated: {args.orgs} orgs, {args.releases} releases with files, {args.runs} runs x "
              f"{args.tasks} steps x {args.lines} log lines = {lines:,} lines in {fill_s:.1f} s")
        print(f"backup size: {size / 2**20:.1f} MiB in {len(manifest['files'])} files")
        print(f"backup:  {backup_s:.2f} s")
        print(f"restore: {restore_s:.2f} s wall, process start included ({inside})")
        print(f"restored console matches (row counts of every table, secret decrypted): {ok}")
        if not ok:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
