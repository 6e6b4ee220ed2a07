"""Backups of a console (`manage.py backup DIR`, `manage.py restore DIR`).

A backup is a folder: the database (SQLite: a copy made by SQLite's online backup API, consistent
while the console writes; PostgreSQL: `pg_dump -Fc`), the keys the console generated into
DATA_DIR (the Django secret key, the Fernet key encrypting cluster credentials and secret configs),
the release files (content-addressed bundles under DICE_DEPLOY_FILES) and the hosted repositories
when the console has any, described by `manifest.json` (written last: a backup without it is
incomplete) with the size and sha256 of every file.

Restore checks everything before it changes anything: the manifest, every file's sha256, the
database vendor, the migrations (a backup from newer code is refused), the tools, and that the
target database is empty (unless forced). Not in a backup: what the console re-creates (release
working directories, pipeline caches and run folders, the local cluster's processes) and keys given
in the environment (DICE_SECRET_KEY, DICE_ENCRYPTION_KEY: the operator keeps those).
"""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.db import connection

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_FILE = "database.sqlite3"
PG_FILE = "database.pgdump"
KEY_FILES = ("secret_key", "encryption_key")  # in DATA_DIR; see settings._secret_key, apps/clusters/crypto.py
KEY_ENV = {"secret_key": "DICE_SECRET_KEY", "encryption_key": "DICE_ENCRYPTION_KEY"}


class BackupError(Exception):
    """The backup or restore cannot go on; the message names the problem. Nothing was changed."""


Say = Callable[[str], None]


# ---- where things are -------------------------------------------------------------------------


def _data_dir() -> Path:
    return Path(settings.DATA_DIR)


def _file_trees() -> dict[str, Path | None]:
    """The folders a backup keeps, by name in the backup (None: the console has none)."""
    deploy = Path(getattr(settings, "DICE_DEPLOY_FILES", "") or _data_dir() / "deploy")
    # hosted repositories (apps.pipelines.repos), one bare repository per application
    repos = Path(getattr(settings, "DICE_REPOS_ROOT", "") or _data_dir() / "repos")
    return {
        # Bundles only: working directories are unpacked from them (or cloned) again when needed.
        "release-files": deploy / "bundles",
        "repositories": repos,
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.2f} MiB"


def _vendor() -> str:
    return connection.vendor  # "sqlite" or "postgresql"


def _pg_tool(name: str) -> str:
    """pg_dump/pg_restore: on PATH, else Debian's versioned folders (newest first)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0, reverse=True)
    if candidates:
        return candidates[0]
    raise BackupError(f"{name} not found on PATH nor in /usr/lib/postgresql/*/bin: "
                      "install the PostgreSQL client tools (apt-get install postgresql-client)")


def _pg_args() -> tuple[list[str], dict[str, str]]:
    db = settings.DATABASES["default"]
    args = []
    if db.get("HOST"):
        args += ["-h", str(db["HOST"])]
    if db.get("PORT"):
        args += ["-p", str(db["PORT"])]
    if db.get("USER"):
        args += ["-U", str(db["USER"])]
    env = {**os.environ}
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])
    return args, env


def _db_name() -> str:
    return str(connection.settings_dict["NAME"])


def _key_fingerprints(spec: str) -> list[str]:
    """Fingerprints of the Fernet keys of a DICE_ENCRYPTION_KEY-style spec (first: the one that encrypts)."""
    from apps.clusters import crypto

    return [crypto.fingerprint(crypto._as_fernet_key(k).decode()) for k in spec.split(",") if k.strip()]


def _encryption_spec(key_file: Path | None) -> str:
    """The encryption key(s) this console uses: the environment or settings, else the key file."""
    explicit = os.environ.get("DICE_ENCRYPTION_KEY") or getattr(settings, "DICE_ENCRYPTION_KEY", "")
    if explicit:
        return explicit
    return key_file.read_text().strip() if key_file is not None and key_file.is_file() else ""


# ---- the database -------------------------------------------------------------------------------


def _applied_migrations() -> dict[str, list[str]]:
    from django.db.migrations.recorder import MigrationRecorder

    applied: dict[str, list[str]] = {}
    for app, name in sorted(MigrationRecorder(connection).applied_migrations()):
        applied.setdefault(app, []).append(name)
    return applied


def _snapshot_sqlite(into: Path) -> None:
    if not Path(_db_name()).is_file():
        raise BackupError(f"{_db_name()}: no database there, nothing to back up (is DICE_DATA_DIR right?)")
    # Read-write, though it only reads: a read-only connection cannot open a WAL database whose
    # -wal and -shm files are gone (a console stopped cleanly).
    source = sqlite3.connect(_db_name(), timeout=20)
    target = sqlite3.connect(into)
    try:
        # One step: the copy is one read transaction of the source (WAL: writers go on meanwhile).
        source.backup(target)
        ok = target.execute("PRAGMA integrity_check").fetchone()[0]
        if ok != "ok":
            raise BackupError(f"the copy of the database fails SQLite's integrity check: {ok}")
    finally:
        target.close()
        source.close()


def _snapshot_postgres(into: Path) -> None:
    args, env = _pg_args()
    done = subprocess.run([_pg_tool("pg_dump"), "-Fc", "--no-owner", "--no-privileges", *args,
                           "-f", str(into), _db_name()], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"pg_dump failed: {done.stderr.strip()}")


def _read_only(path: Path) -> str:
    return Path(path).resolve().as_uri() + "?mode=ro"


def _migrations_of_sqlite_file(path: Path) -> dict[str, list[str]]:
    db = sqlite3.connect(_read_only(path), uri=True)
    try:
        rows = db.execute("SELECT app, name FROM django_migrations ORDER BY app, name").fetchall()
    finally:
        db.close()
    applied: dict[str, list[str]] = {}
    for app, name in rows:
        applied.setdefault(app, []).append(name)
    return applied


# ---- backup -------------------------------------------------------------------------------------


def backup(target: Path, *, say: Say = print) -> dict:
    """Write a backup of this console into `target` (a new or empty folder); returns the manifest."""
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupError(f"{target}: exists and is not an empty folder; give a new one")
    for section, root in _file_trees().items():
        if root is not None and target.resolve().is_relative_to(root.resolve()):
            raise BackupError(f"{target}: inside {root}, which the backup copies ({section}); give a folder outside it")
    existed = target.exists()
    target.mkdir(parents=True, exist_ok=True)
    try:
        return _backup_into(target, say)
    except BaseException:
        # The folder was new or empty: leave it so, not with half a backup in it.
        if existed:
            for child in target.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        else:
            shutil.rmtree(target, ignore_errors=True)
        raise


def _backup_into(target: Path, say: Say) -> dict:
    started = time.monotonic()
    vendor = _vendor()
    files: list[dict] = []

    def record(path: Path, section: str) -> None:
        files.append({"path": path.relative_to(target).as_posix(), "section": section,
                      "size": path.stat().st_size, "sha256": _sha256(path)})

    # The database first: files it names (bundles) exist before their row, and are never changed.
    say(f"database: {vendor} {_db_name()} ...")
    t0 = time.monotonic()
    if vendor == "sqlite":
        db_file = target / SQLITE_FILE
        _snapshot_sqlite(db_file)
        migrations = _migrations_of_sqlite_file(db_file)
    elif vendor == "postgresql":
        db_file = target / PG_FILE
        # Migrations read in the dump's snapshot are the same unless a migrate runs meanwhile:
        # read before and after and refuse a backup taken across a migration.
        migrations = _applied_migrations()
        _snapshot_postgres(db_file)
        if _applied_migrations() != migrations:
            raise BackupError("migrations were applied while the backup ran: run it again")
    else:
        raise BackupError(f"database vendor {vendor!r} is not supported (SQLite and PostgreSQL are)")
    record(db_file, "database")
    say(f"database: {_mib(db_file.stat().st_size)} in {time.monotonic() - t0:.2f} s")

    keys: dict[str, str] = {}
    (target / "keys").mkdir()
    for name in KEY_FILES:
        env_name = KEY_ENV[name]
        source = _data_dir() / name
        if os.environ.get(env_name):
            keys[name] = f"environment ({env_name}): not in the backup, keep it with the backup"
        elif source.exists():
            copy = target / "keys" / name
            shutil.copyfile(source, copy)
            copy.chmod(0o600)
            record(copy, "keys")
            keys[name] = f"keys/{name}"
        else:
            keys[name] = "absent"
    say("keys: " + ", ".join(f"{k}: {'saved' if v.startswith('keys/') else v}" for k, v in keys.items()))

    trees: dict[str, str] = {}
    for section, root in _file_trees().items():
        if root is None or not root.is_dir():
            trees[section] = "absent"
            say(f"{section}: none")
            continue
        count, size = 0, 0
        for path in sorted(root.rglob("*")):
            if path.is_symlink() or not path.is_file():
                continue
            copy = target / "files" / section / path.relative_to(root)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
            record(copy, section)
            count, size = count + 1, size + copy.stat().st_size
        trees[section] = str(root)
        say(f"{section}: {count} files, {_mib(size)}")

    spec = _encryption_spec(_data_dir() / "encryption_key")
    manifest = {
        "format": FORMAT,
        # Which keys encrypted the secrets in the database (fingerprints only): restore refuses a
        # console that would not hold the current one.
        "encryption_keys": _key_fingerprints(spec) if spec else [],
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "database": {"vendor": vendor, "file": db_file.name, "name": _db_name()},
        "migrations": migrations,
        "keys": keys,
        "trees": trees,
        "files": files,
    }
    # Written last, atomically: a folder without a manifest is an incomplete backup.
    tmp = target / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(tmp, target / MANIFEST)
    total = sum(f["size"] for f in files)
    say(f"backup written to {target}: {len(files)} files, {_mib(total)} in {time.monotonic() - started:.2f} s")
    return manifest


# ---- restore ------------------------------------------------------------------------------------


def _read_manifest(source: Path) -> dict:
    path = source / MANIFEST
    if not source.is_dir():
        raise BackupError(f"{source}: no such folder")
    if not path.is_file():
        raise BackupError(f"{path}: missing: an incomplete backup (the manifest is written last)")
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise BackupError(f"{path}: not valid JSON ({exc})")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise BackupError(f"{path}: format {found!r}, this console reads format {FORMAT}")
    for field, kind in (("database", dict), ("migrations", dict), ("keys", dict), ("files", list)):
        if not isinstance(manifest.get(field), kind):
            raise BackupError(f"{path}: no {field!r} entry (or not a {kind.__name__})")
    if not all(isinstance(names, list) for names in manifest["migrations"].values()):
        raise BackupError(f"{path}: 'migrations' must map each app to a list of names")
    if not all(isinstance(entry, dict) for entry in manifest["files"]):
        raise BackupError(f"{path}: every entry of 'files' must be an object")
    return manifest


def _check_files(source: Path, manifest: dict, say: Say) -> None:
    seen = set()
    for entry in manifest["files"]:
        rel = PurePosixPath(str(entry.get("path", "")))
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise BackupError(f"{MANIFEST}: file path {str(rel)!r} leaves the backup folder")
        section = entry.get("section")
        if section == "keys":
            if rel.parent != PurePosixPath("keys") or rel.name not in KEY_FILES:
                raise BackupError(f"{MANIFEST}: {str(rel)!r} is not one of the keys a backup holds")
        elif section in _file_trees():
            if rel.parts[:2] != ("files", section) or len(rel.parts) < 3:
                raise BackupError(f"{MANIFEST}: {str(rel)!r} is not under files/{section}/")
        elif section != "database":
            raise BackupError(f"{MANIFEST}: {str(rel)!r} has an unknown section {section!r}")
        path = source / rel
        if path.is_symlink() or not path.is_file():
            raise BackupError(f"{path}: listed in the manifest but missing: an incomplete backup")
        if path.stat().st_size != entry.get("size"):
            raise BackupError(f"{path}: {path.stat().st_size} bytes, the manifest says {entry.get('size')}: "
                              "the backup was changed or truncated")
        if _sha256(path) != entry.get("sha256"):
            raise BackupError(f"{path}: sha256 differs from the manifest's: the backup was changed")
        seen.add(str(rel))
    db_file = manifest["database"].get("file")
    if db_file not in seen:
        raise BackupError(f"{MANIFEST}: the database file {db_file!r} is not among the listed files")
    say(f"checked {len(seen)} files against the manifest")


def _code_migrations() -> set[tuple[str, str]]:
    from django.db.migrations.loader import MigrationLoader

    return set(MigrationLoader(None, ignore_no_migrations=True).disk_migrations)


def _target_has_data() -> str | None:
    """What makes the target database non-empty (None: empty)."""
    if _vendor() == "sqlite" and not Path(_db_name()).exists():
        return None  # not created yet: looking would create it
    tables = connection.introspection.table_names()
    if not tables:
        return None
    with connection.cursor() as cursor:
        for table in ("auth_user", "projects_organization"):
            if table in tables:
                cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")
                count = cursor.fetchone()[0]
                if count:
                    return f"{count} rows in {table}"
    return None


def restore(source: Path, *, force: bool = False, say: Say = print) -> dict:
    """Restore the backup in `source` into this console's (stopped) database and data folders."""
    source = Path(source)
    started = time.monotonic()
    manifest = _read_manifest(source)
    vendor = _vendor()
    if manifest["database"].get("vendor") != vendor:
        raise BackupError(f"the backup is of a {manifest['database'].get('vendor')} database; "
                          f"this console uses {vendor} (DATABASE_URL): restore into the same kind")
    _check_files(source, manifest, say)
    known = _code_migrations()
    unknown = sorted(f"{app}.{name}" for app, names in manifest["migrations"].items() for name in names
                     if (app, name) not in known)
    if unknown:
        raise BackupError(f"the backup has migrations this code does not know ({', '.join(unknown[:5])}"
                          f"{' ...' if len(unknown) > 5 else ''}): restore with the console's newer version")
    tool = _pg_tool("pg_restore") if vendor == "postgresql" else None
    busy = _target_has_data()
    if busy and not force:
        raise BackupError(f"the target database {_db_name()} is not empty ({busy}): "
                          "restore into an empty one, or give --force to replace its content")
    for name, where in manifest["keys"].items():
        if name in KEY_ENV and str(where).startswith("environment") and not os.environ.get(KEY_ENV[name]):
            say(f"warning: the backup's {name} came from {KEY_ENV[name]}, which is not set here: "
                f"set it to the same value before starting the console")
    wanted = manifest.get("encryption_keys") or []
    if wanted:
        saved = manifest["keys"].get("encryption_key") == "keys/encryption_key"
        spec = _encryption_spec(source / "keys" / "encryption_key" if saved else _data_dir() / "encryption_key")
        have = _key_fingerprints(spec) if spec else []
        if wanted[0] not in have:
            where = "DICE_ENCRYPTION_KEY" if os.environ.get("DICE_ENCRYPTION_KEY") else "its encryption_key file"
            raise BackupError(f"the backup's secrets are encrypted with key {wanted[0]}; this console would use "
                              f"{', '.join(have) or 'none'} ({where}): set DICE_ENCRYPTION_KEY to the key the "
                              "backup was made with")
        if any(fp not in have for fp in wanted[1:]):
            say("warning: older encryption keys of the backup are not among this console's: "
                "secrets still encrypted with them cannot be read")
    trees = _file_trees()
    for section, root in trees.items():
        if root is None and any(e.get("section") == section for e in manifest["files"]):
            raise BackupError(f"the backup has {section} but this console has no folder for them: "
                              "configure it first")

    # Everything checked: change things from here on.
    t0 = time.monotonic()
    db_path = source / manifest["database"]["file"]
    say(f"database: restoring into {vendor} {_db_name()} ...")
    if vendor == "sqlite":
        connection.close()
        target_path = Path(_db_name())
        target_path.parent.mkdir(parents=True, exist_ok=True)
        src = sqlite3.connect(_read_only(db_path), uri=True)
        dst = sqlite3.connect(target_path, timeout=20)
        try:
            src.backup(dst)  # page by page through SQLite: the target's WAL stays consistent
        finally:
            dst.close()
            src.close()
    else:
        connection.close()
        args, env = _pg_args()
        command = [tool, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
                   *args, "-d", _db_name()]
        if busy or connection.introspection.table_names():
            command.insert(1, "--clean")
            command.insert(2, "--if-exists")
        done = subprocess.run([*command, str(db_path)], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise BackupError(f"pg_restore failed (the database was left as it was): {done.stderr.strip()}")
    say(f"database: {_mib(db_path.stat().st_size)} in {time.monotonic() - t0:.2f} s")

    restored_keys = []
    for entry in manifest["files"]:
        rel = PurePosixPath(entry["path"])
        if entry.get("section") == "keys" and rel.name in KEY_FILES:
            target = _data_dir() / rel.name
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{rel.name}.")
            with os.fdopen(fd, "wb") as fh:
                fh.write((source / rel).read_bytes())
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)
            restored_keys.append(rel.name)
    say("keys: " + (", ".join(restored_keys) + f" into {_data_dir()}" if restored_keys else "none in the backup"))
    if "secret_key" in restored_keys and os.environ.get("DICE_SECRET_KEY"):
        say("warning: DICE_SECRET_KEY is set: the restored secret_key file is not used")
    if "encryption_key" in restored_keys and os.environ.get("DICE_ENCRYPTION_KEY"):
        say("warning: DICE_ENCRYPTION_KEY is set: the restored encryption_key file is not used")

    for section, root in trees.items():
        entries = [e for e in manifest["files"] if e.get("section") == section]
        if not entries or root is None:
            continue
        prefix = PurePosixPath("files") / section
        for entry in entries:
            rel = PurePosixPath(entry["path"]).relative_to(prefix)
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".restore.")
            os.close(fd)
            shutil.copyfile(source / entry["path"], tmp)
            os.replace(tmp, target)
        say(f"{section}: {len(entries)} files into {root}")

    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        say(f"{len(pending)} migrations of this code are newer than the backup: run `manage.py migrate`")
    say(f"restored {source} in {time.monotonic() - started:.2f} s")
    return manifest
