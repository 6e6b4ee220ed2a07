"""`manage.py backup` / `manage.py restore`: a populated console backed up, restored into an empty
one (a second SQLite data folder, or a scratch PostgreSQL database), and everything found again:
rows of every table, release files, log lines, and secrets decrypted with the restored key. And the
refusals: an incomplete or changed backup, another database vendor, a target that is not empty."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.core.management import call_command

from tests.conftest import ROOT, Tenant

SPEC = """\
version: "2.0"
services:
  web:
    image: registry.example/shop/web:1.0
    ports: [8080]
    resources: {cpu: 0.5, mem: 256}
"""
SECRET_VALUE = "s3cret-db-password-\u00e9"
KUBECONFIG = "apiVersion: v1\nkind: Config\n# a credential only the console may read\n"
LOG_LINES = 2500

# Run in the restored console: what it holds, as JSON.
VERIFY = r"""
import hashlib, json, os
import django
os.environ["DJANGO_SETTINGS_MODULE"] = "dice_console.settings"
django.setup()
from django.apps import apps
from django.conf import settings
from apps.clusters.models import Cluster
from apps.clusters import crypto
from apps.deploy import bundles
from apps.deploy.models import ReleaseBundle
from apps.logs.services import read_task_lines
from apps.pipelines.models import ProjectConfig, TaskRun
out = {"counts": {m._meta.label: m.objects.count() for m in apps.get_models()}}
bundle = ReleaseBundle.objects.get()
path = bundles.files_root() / "bundles" / f"{bundle.sha256}.tar.gz"
out["bundle_ok"] = path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == bundle.sha256
task = TaskRun.objects.get(alias="build")
lines = read_task_lines(task.pk)
out["log"] = [len(lines), lines[0].text, lines[-1].text, lines[-1].stream]
out["secret"] = ProjectConfig.objects.get(key="DB_PASSWORD").plain_value()
out["kubeconfig"] = crypto.decrypt(Cluster.objects.get(name="prod").credentials)
out["secret_key_file"] = (settings.DATA_DIR / "secret_key").read_text()
print("VERIFY " + json.dumps(out))
"""


def _env(data_dir: Path, database_url: str | None = None) -> dict[str, str]:
    drop = ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "DICE_DEPLOY_FILES", "DICE_SECRET_KEY",
            "DICE_ENCRYPTION_KEY", "DICE_LOCAL_ROOT", "DICE_PIPELINE_ROOT")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update({"DICE_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"})
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def _manage(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def _verify(env) -> dict:
    done = subprocess.run([sys.executable, "-c", VERIFY], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("VERIFY "))
    return json.loads(line.removeprefix("VERIFY "))


@pytest.fixture
def console(transactional_db, settings, tmp_path, monkeypatch):
    """A populated console whose data folder is tmp_path/source."""
    from django.apps import apps

    from apps.clusters import crypto
    from apps.clusters.models import Cluster
    from apps.deploy import bundles
    from apps.deploy import services as deploy_services
    from apps.pipelines import services as pipeline_services
    from apps.pipelines import steplogs
    from tests.logs_helpers import make_task_run

    monkeypatch.delenv("DICE_ENCRYPTION_KEY", raising=False)
    source = tmp_path / "source"
    source.mkdir()
    (source / "secret_key").write_text("the-source-console-secret-key")
    settings.DATA_DIR = source
    settings.DICE_DEPLOY_FILES = source / "deploy"

    tenant = Tenant("bk")
    Tenant("other")
    release = deploy_services.create_release(tenant.owner, tenant.app, spec_text=SPEC, description="backed up")
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "dice.yml").write_text(SPEC)
    (folder / "main.py").write_text("print('hello')\n" * 500)
    bundle = bundles.attach_bundle(release, bundles.make_archive(folder))
    task = make_task_run(tenant, alias="build", status="success")
    steplogs.append_lines(task, [f"line {n}" for n in range(1, LOG_LINES)], "stdout")
    steplogs.append_lines(task, ["the end"], "stderr")
    pipeline_services.set_config(tenant.owner, tenant.project, key="DB_PASSWORD", value=SECRET_VALUE, secret=True)
    Cluster.objects.create(name="prod", credentials=crypto.encrypt(KUBECONFIG),
                           credentials_fingerprint=crypto.fingerprint(KUBECONFIG))
    counts = {m._meta.label: m.objects.count() for m in apps.get_models()}
    assert counts["logs.LogChunk"] >= 2 and bundle.size > 0
    return {"tenant": tenant, "counts": counts, "source": source}


def _backup(tmp_path) -> tuple[Path, float, str]:
    out = io.StringIO()
    target = tmp_path / "backup"
    started = time.monotonic()
    call_command("backup", str(target), stdout=out)
    return target, time.monotonic() - started, out.getvalue()


def _check_restored(found: dict, console) -> None:
    expected = dict(console["counts"])
    # Sessions are not made by the test; everything else must be there, row for row.
    assert found["counts"] == expected
    assert found["bundle_ok"] is True
    assert found["log"] == [LOG_LINES, "line 1", "the end", "stderr"]
    assert found["secret"] == SECRET_VALUE
    assert found["kubeconfig"] == KUBECONFIG
    assert found["secret_key_file"] == "the-source-console-secret-key"


def _manifest_of(backup_dir: Path) -> dict:
    return json.loads((backup_dir / "manifest.json").read_text())


@pytest.fixture
def sqlite_only():
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("the SQLite round trip runs in the SQLite pass (DATABASE_URL unset)")


def test_sqlite_backup_restores_into_an_empty_console(console, tmp_path, sqlite_only, capsys):
    from apps.clusters import crypto

    backup_dir, backup_s, progress = _backup(tmp_path)
    assert "database: sqlite" in progress and "release-files: 1 files" in progress
    assert "repositories: none" in progress and f"backup written to {backup_dir}" in progress
    manifest = _manifest_of(backup_dir)
    assert manifest["database"]["vendor"] == "sqlite"
    assert "0001_initial" in manifest["migrations"]["projects"]
    assert {f["section"] for f in manifest["files"]} == {"database", "keys", "release-files"}
    assert manifest["encryption_keys"] == [crypto.fingerprint((console["source"] / "encryption_key").read_text())]
    for entry in manifest["files"]:
        data = (backup_dir / entry["path"]).read_bytes()
        assert len(data) == entry["size"] and hashlib.sha256(data).hexdigest() == entry["sha256"]

    target = tmp_path / "target"
    env = _env(target)
    started = time.monotonic()
    done = _manage(env, "restore", str(backup_dir))
    restore_s = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "checked" in done.stdout and "release-files: 1 files" in done.stdout
    _check_restored(_verify(env), console)
    with capsys.disabled():
        print(f"\nbackup {backup_s:.2f} s, restore {restore_s:.2f} s (subprocess, Django start included), "
              f"{sum(f['size'] for f in manifest['files']) / 1024:.0f} KiB")

    # The restored console is no longer empty: a second restore is refused, --force replaces.
    again = _manage(env, "restore", str(backup_dir))
    assert again.returncode != 0 and "is not empty" in again.stderr and "--force" in again.stderr
    forced = _manage(env, "restore", "--force", str(backup_dir))
    assert forced.returncode == 0, forced.stderr
    _check_restored(_verify(env), console)


def _copy(backup_dir: Path, tmp_path: Path, name: str) -> Path:
    copy = tmp_path / name
    shutil.copytree(backup_dir, copy)
    return copy


def test_restore_refuses_a_broken_backup_and_changes_nothing(console, tmp_path, sqlite_only):
    backup_dir, _, _ = _backup(tmp_path)
    manifest = _manifest_of(backup_dir)
    target = tmp_path / "target"
    target.mkdir()
    env = _env(target)
    bundle = next(f["path"] for f in manifest["files"] if f["section"] == "release-files")

    changed = _copy(backup_dir, tmp_path, "changed")
    data = bytearray((changed / bundle).read_bytes())
    data[100] ^= 0xFF
    (changed / bundle).write_bytes(bytes(data))
    truncated = _copy(backup_dir, tmp_path, "truncated")
    db_file = truncated / manifest["database"]["file"]
    db_file.write_bytes(db_file.read_bytes()[:4096])
    missing_file = _copy(backup_dir, tmp_path, "missing-file")
    (missing_file / "keys" / "encryption_key").unlink()
    no_manifest = _copy(backup_dir, tmp_path, "no-manifest")
    (no_manifest / "manifest.json").unlink()
    vendor = _copy(backup_dir, tmp_path, "vendor")
    (vendor / "manifest.json").write_text(json.dumps({**manifest, "database": {**manifest["database"],
                                                                               "vendor": "postgresql"}}))
    escape = _copy(backup_dir, tmp_path, "escape")
    evil = {**manifest, "files": [*manifest["files"], {"path": "../../etc/passwd", "section": "keys",
                                                       "size": 1, "sha256": "0"}]}
    (escape / "manifest.json").write_text(json.dumps(evil))
    misplaced = _copy(backup_dir, tmp_path, "misplaced")
    key_entry = next(f for f in manifest["files"] if f["section"] == "keys")
    moved = [{**f, "section": "release-files"} if f is key_entry else f for f in manifest["files"]]
    (misplaced / "manifest.json").write_text(json.dumps({**manifest, "files": moved}))
    mangled = _copy(backup_dir, tmp_path, "mangled")
    (mangled / "manifest.json").write_text(json.dumps({**manifest, "files": "everything"}))
    newer = _copy(backup_dir, tmp_path, "newer")
    migrations = {**manifest["migrations"], "projects": [*manifest["migrations"]["projects"], "9999_future"]}
    (newer / "manifest.json").write_text(json.dumps({**manifest, "migrations": migrations}))

    other_key = _env(target)
    other_key["DICE_ENCRYPTION_KEY"] = "a key the backup was not made with"

    cases = {
        changed: f"{changed / bundle}: sha256 differs from the manifest's",
        truncated: "bytes, the manifest says",
        missing_file: "encryption_key: listed in the manifest but missing",
        no_manifest: "manifest.json: missing: an incomplete backup",
        vendor: "the backup is of a postgresql database; this console uses sqlite",
        escape: "'../../etc/passwd' leaves the backup folder",
        newer: "projects.9999_future",
        misplaced: f"{key_entry['path']!r} is not under files/release-files/",
        mangled: "no 'files' entry (or not a list)",
        tmp_path / "nowhere": "no such folder",
    }
    for folder, message in [*cases.items(), (backup_dir, "the backup's secrets are encrypted with key sha256:")]:
        done = _manage(other_key if folder == backup_dir else env, "restore", str(folder))
        assert done.returncode != 0, (folder, done.stdout)
        assert message in done.stderr, (folder, done.stderr)
        # Nothing changed: no database, no keys restored (settings made the secret key at start).
        assert sorted(p.name for p in target.iterdir()) == ["secret_key"], folder
        assert (target / "secret_key").read_text() != "the-source-console-secret-key"


def test_backup_refuses_a_folder_that_is_not_empty(console, tmp_path):
    from django.core.management.base import CommandError

    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "something").write_text("x")
    with pytest.raises(CommandError, match="exists and is not an empty folder"):
        call_command("backup", str(tmp_path / "used"), stdout=io.StringIO())
    inside = console["source"] / "deploy" / "bundles" / "backup"
    with pytest.raises(CommandError, match="which the backup copies"):
        call_command("backup", str(inside), stdout=io.StringIO())
    assert not inside.exists()


def test_a_failed_backup_leaves_no_half_backup(console, tmp_path, monkeypatch):
    from django.core.management.base import CommandError

    from dice_console import backup

    def broken(spec):  # the last step before the manifest: everything else is written by then
        raise backup.BackupError("injected: the disk is full")

    monkeypatch.setattr(backup, "_key_fingerprints", broken)
    with pytest.raises(CommandError, match="injected"):
        call_command("backup", str(tmp_path / "new"), stdout=io.StringIO())
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(CommandError, match="injected"):
        call_command("backup", str(tmp_path / "empty"), stdout=io.StringIO())
    assert list((tmp_path / "empty").iterdir()) == []


def _database_url(name: str) -> str:
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + name))


@pytest.mark.postgres
def test_postgres_backup_restores_into_a_scratch_database(console, tmp_path, capsys):
    import psycopg
    from django.db import connection

    assert connection.vendor == "postgresql"
    scratch = urlsplit(os.environ["DATABASE_URL"]).path.strip("/") + "_restore"
    admin = psycopg.connect(_database_url("postgres"), autocommit=True)
    admin.execute(f'DROP DATABASE IF EXISTS "{scratch}"')
    admin.execute(f'CREATE DATABASE "{scratch}"')
    try:
        backup_dir, backup_s, progress = _backup(tmp_path)
        assert "database: postgresql" in progress
        manifest = _manifest_of(backup_dir)
        assert manifest["database"]["vendor"] == "postgresql" and manifest["database"]["file"] == "database.pgdump"

        # Another vendor's console refuses it, changing nothing.
        sqlite_target = tmp_path / "sqlite-target"
        refused = _manage(_env(sqlite_target), "restore", str(backup_dir))
        assert refused.returncode != 0
        assert "the backup is of a postgresql database; this console uses sqlite" in refused.stderr
        assert not (sqlite_target / "dice.sqlite3").exists()

        target = tmp_path / "target"
        env = _env(target, _database_url(scratch))
        started = time.monotonic()
        done = _manage(env, "restore", str(backup_dir))
        restore_s = time.monotonic() - started
        assert done.returncode == 0, done.stderr
        _check_restored(_verify(env), console)
        with capsys.disabled():
            print(f"\npostgres: backup {backup_s:.2f} s, restore {restore_s:.2f} s (subprocess included)")

        again = _manage(env, "restore", str(backup_dir))
        assert again.returncode != 0 and "is not empty" in again.stderr
        forced = _manage(env, "restore", "--force", str(backup_dir))
        assert forced.returncode == 0, forced.stderr
        _check_restored(_verify(env), console)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        admin.close()
