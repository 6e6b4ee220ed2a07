"""Addons from local binaries: PostgreSQL, Redis and MySQL/MariaDB, one data directory each.

In a sandbox (the default, sandbox.py) an addon is tenant code like any other: its setup
(initdb, mariadb-install-db) and its server run as the organization's uid, seeing only its own
directory, which that uid owns. Without a sandbox, PostgreSQL, which refuses to run as root, runs
as the unprivileged user `nobody` (config `addon_user`) when the console runs as root, the data
directory chowned to it; if `nobody` cannot reach the state directory (a parent without o+x, like
/root or pytest's tmp dirs) the data lives in /var/tmp/dice-local-<hash>/ instead, linked from
the state dir.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from scheduler.base import ExecutorError, ExecutorUnavailable
from scheduler.envvars import SECRET_FIELDS, addon_envs
from scheduler.local.sandbox import TenantBox
from scheduler.local.state import read_json, write_json

SUPPORTED = ("postgresql", "redis", "mysql", "registry")
PACKAGES = {"postgresql": "postgresql", "redis": "redis-server", "mysql": "mariadb-server",
            "registry": "docker-registry"}
BINARIES = {
    "registry": (("docker-registry",),),
    "postgresql": (("postgres", "initdb"),),
    "redis": (("redis-server",),),
    "mysql": (("mariadbd", "mariadb-install-db"), ("mysqld", "mysql_install_db")),
}


def default_search_path() -> list[str]:
    """PATH, then Debian's versioned PostgreSQL directories (newest first), then sbin dirs."""
    dirs = os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
    pg = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    return [*dirs, *pg, "/usr/sbin", "/usr/local/sbin", "/usr/local/bin"]


def _version_key(path: str) -> tuple[int, ...]:
    part = Path(path).parent.name
    return tuple(int(p) for p in part.split(".") if p.isdigit())


def find_binaries(addon_type: str, search_path: list[str]) -> dict[str, str] | None:
    """All binaries of one alternative, found in the same directory (first match wins)."""
    for names in BINARIES[addon_type]:
        for directory in search_path:
            paths = [os.path.join(directory, n) for n in names]
            if all(os.path.isfile(p) and os.access(p, os.X_OK) for p in paths):
                return dict(zip(names, paths, strict=True))
    return None


@dataclass
class AddonPlan:
    """How to run one addon instance: its process, its readiness probe, the values services see."""

    name: str
    type: str
    prefix: str | None
    values: dict[str, str]  # host, port, username, password, database
    argv: list[str] = field(default_factory=list)  # empty: nothing to run (custom)
    user: str = ""
    cwd: str = ""
    stop_signal: int = signal.SIGTERM
    env: dict[str, str] = field(default_factory=dict)

    def envs(self) -> dict[str, str]:
        return addon_envs(self.type, self.prefix, self.values)

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict) -> AddonPlan:
        return cls(**data)


def check_available(addons: dict, search_path: list[str], cluster: str = "local") -> None:
    """Fail before anything starts when an addon type is unsupported here or its binary missing."""
    for name, addon in addons.items():
        kind = addon.type
        if kind == "custom":
            continue
        if kind not in SUPPORTED:
            raise ExecutorUnavailable(
                f"addon {name!r}: cluster {cluster!r} cannot provide addon type {kind!r}: the local kind runs "
                f"{', '.join(SUPPORTED)} and custom addons; deploy to a cluster that provides it"
            )
        if find_binaries(kind, search_path) is None:
            wanted = " or ".join("/".join(names) for names in BINARIES[kind])
            raise ExecutorUnavailable(
                f"addon {name!r} ({kind}) needs {wanted}, which is not installed: "
                f"apt-get install {PACKAGES[kind]}"
            )


def credentials(addon_dir: Path, name: str, given: dict[str, str] | None) -> dict[str, str]:
    """The group's addon_secrets when given, else generated once and kept (mode 600)."""
    path = addon_dir / "credentials.json"
    kept = read_json(path) or {}
    base = {
        "username": "dice",
        "password": secrets.token_urlsafe(18),
        "database": name.replace("-", "_").lower(),
    }
    creds = {**base, **kept, **(given or {})}
    if creds != kept:
        write_json(path, creds, mode=0o600)
    return creds


def connection_envs(name: str, addon, addon_dir: Path, port: int,
                    given: dict[str, str] | None) -> tuple[dict[str, str], frozenset[str]]:
    """The variables of an addon plan_addon has planned (its port booked, its credentials kept),
    without planning it again, and the names among them whose values are secret (its password):
    what a data engine's job of the runtime is given."""
    if addon.type == "custom":
        values = {**addon.options, **(given or {})}
        prefix = addon.env_prefix
    else:
        if addon.type == "registry":
            values = {"host": "127.0.0.1", "port": str(port), "url": f"http://127.0.0.1:{port}"}
        else:
            values = {"host": "127.0.0.1", "port": str(port), **credentials(addon_dir, name, given)}
            if addon.type == "redis":
                values.pop("username", None)
                values.pop("database", None)
        prefix = addon.as_ or None
    secret = addon_envs(addon.type, prefix, {k: v for k, v in values.items() if k in SECRET_FIELDS})
    return addon_envs(addon.type, prefix, values), frozenset(secret)


def plan_addon(
    name: str,
    addon,
    addon_dir: Path,
    port: int,
    given: dict[str, str] | None,
    search_path: list[str],
    run_user: str,
    box: TenantBox | None = None,
) -> AddonPlan:
    """Prepare the data directory (first time only) and say how to run the addon; with `box`,
    as the tenant's uid in its sandbox."""
    if addon.type == "custom":
        # The file's options, then the connection values the user gave the console for it.
        return AddonPlan(
            name=name, type="custom", prefix=addon.env_prefix, values={**addon.options, **(given or {})}
        )
    addon_dir.mkdir(parents=True, exist_ok=True)
    if box is not None:
        box.own(addon_dir)
    creds = credentials(addon_dir, name, given)
    values = {"host": "127.0.0.1", "port": str(port), **creds}
    bins = find_binaries(addon.type, search_path)
    assert bins is not None  # check_available ran first
    prefix = addon.as_ or None
    if addon.type == "redis":
        values.pop("username", None)
        values.pop("database", None)
        plan = _redis(name, addon_dir, port, creds, bins, prefix, values)
    elif addon.type == "registry":
        values = {"host": "127.0.0.1", "port": str(port), "url": f"http://127.0.0.1:{port}"}
        plan = _registry(name, addon_dir, port, bins, prefix, values)
    elif addon.type == "postgresql":
        plan = _postgres(name, addon_dir, port, creds, bins, prefix, values, run_user, box)
    else:
        plan = _mysql(name, addon_dir, port, creds, bins, prefix, values, box)
    if box is not None:
        box.own(addon_dir, recursive=True)  # config written here as root, data from before the sandbox
        if (addon_dir / "data").is_symlink():  # data kept outside the state directory before
            box.own((addon_dir / "data").resolve(), recursive=True)
    return plan


def _redis(name, addon_dir, port, creds, bins, prefix, values) -> AddonPlan:
    data = addon_dir / "data"
    data.mkdir(exist_ok=True)
    conf = addon_dir / "redis.conf"
    text = "\n".join(
        [
            "bind 127.0.0.1",
            f"port {port}",
            f'dir "{data}"',
            f'requirepass "{creds["password"]}"',
            "daemonize no",
            'logfile ""',
            "save 60 1",
            "appendonly no",
            "",
        ]
    )
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return AddonPlan(
        name=name, type="redis", prefix=prefix, values=values, argv=[bins["redis-server"], str(conf)], cwd=str(data)
    )


def _registry(name, addon_dir, port, bins, prefix, values) -> AddonPlan:
    """Debian's docker-registry (the distribution registry), plain HTTP on 127.0.0.1, its blobs in
    the addon's data directory: what image-build pushes to and the runtime's images come from."""
    data = addon_dir / "data"
    data.mkdir(exist_ok=True)
    conf = addon_dir / "registry.yml"
    conf.write_text("\n".join([
        "version: 0.1",
        "log: {level: warn}",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {data}",
        "  delete: {enabled: true}",
        "http:",
        f"  addr: 127.0.0.1:{port}",
        "",
    ]))
    return AddonPlan(name=name, type="registry", prefix=prefix, values=values,
                     argv=[bins["docker-registry"], "serve", str(conf)], cwd=str(data))


def _reachable_by(user: str, path: Path) -> bool:
    """Whether `user` may traverse every directory down to path (mode bits only)."""
    entry = pwd.getpwnam(user)
    for parent in [*reversed(path.parents)]:
        try:
            st = parent.stat()
        except OSError:
            return False
        if st.st_uid == entry.pw_uid:
            bit = 0o100
        elif st.st_gid == entry.pw_gid:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            return False
    return True


def _postgres_data_dir(addon_dir: Path, user: str) -> Path:
    link = addon_dir / "data"
    if link.is_symlink():
        return link.resolve()
    if not user or _reachable_by(user, addon_dir):
        return link
    digest = hashlib.sha1(str(addon_dir.resolve()).encode()).hexdigest()[:16]
    base = Path(tempfile.gettempdir()) if not os.path.isdir("/var/tmp") else Path("/var/tmp")
    outside = base / f"dice-local-{digest}"
    outside.mkdir(mode=0o711, exist_ok=True)
    os.chmod(outside, 0o711)
    target = outside / "data"
    link.symlink_to(target)
    return target


def _postgres(name, addon_dir, port, creds, bins, prefix, values, run_user, box=None) -> AddonPlan:
    user = run_user if os.geteuid() == 0 and box is None else ""
    data = _postgres_data_dir(addon_dir, user)
    as_user = {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []} if user else {}
    if box is not None:
        as_user = {"box": box, "binds": [str(addon_dir)]}
    if not (data / "PG_VERSION").exists():
        if data.exists():
            shutil.rmtree(data)  # a half-done initdb: start over
        data.mkdir(mode=0o700, parents=True)
        pwfile = data.parent / f".pw-{name}"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(creds["password"] + "\n")
        if user:
            entry = pwd.getpwnam(user)
            os.chown(data, entry.pw_uid, entry.pw_gid)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        if box is not None:
            box.own(data)
            box.own(pwfile)
        try:
            _run(
                [bins["initdb"], "-D", str(data), "-U", creds["username"], f"--pwfile={pwfile}",
                 "-A", "scram-sha-256", "-E", "UTF8", "--no-sync"],
                f"initdb for addon {name!r}",
                **as_user,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        _run(
            [bins["postgres"], "--single", "-D", str(data), "postgres"],
            f"creating the database of addon {name!r}",
            input=f'CREATE DATABASE "{creds["database"]}"\n'.encode(),
            **as_user,
        )
    argv = [
        bins["postgres"], "-D", str(data), "-p", str(port),
        "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
        "-c", "max_connections=50", "-c", "shared_buffers=32MB",
    ]
    return AddonPlan(
        name=name, type="postgresql", prefix=prefix, values=values, argv=argv, user=user,
        cwd="/", stop_signal=signal.SIGINT,  # fast shutdown: do not wait for clients
    )


def _mysql(name, addon_dir, port, creds, bins, prefix, values, box=None) -> AddonPlan:
    data = addon_dir / "data"
    server = bins.get("mariadbd") or bins["mysqld"]
    install = bins.get("mariadb-install-db") or bins["mysql_install_db"]
    me = box.user if box is not None else pwd.getpwuid(os.geteuid()).pw_name
    if not (data / "mysql").exists():
        data.mkdir(parents=True, exist_ok=True)
        if box is not None:
            box.own(data)
        _run([install, f"--datadir={data}", f"--user={me}", "--auth-root-authentication-method=normal",
              "--skip-test-db"], f"mariadb-install-db for addon {name!r}",
             **({"box": box, "binds": [str(addon_dir)]} if box is not None else {}))
    init = addon_dir / "init.sql"
    user, pw, db = creds["username"], creds["password"].replace("'", "''"), creds["database"]
    sql = (
        f"CREATE DATABASE IF NOT EXISTS `{db}`;\n"
        f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{pw}';\n"
        f"ALTER USER '{user}'@'%' IDENTIFIED BY '{pw}';\n"
        f"GRANT ALL ON `{db}`.* TO '{user}'@'%';\n"
    )
    fd = os.open(init, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(sql)
    argv = [
        server, "--no-defaults", f"--datadir={data}", f"--port={port}", "--bind-address=127.0.0.1",
        f"--socket={addon_dir / 'mysqld.sock'}", f"--user={me}", f"--init-file={init}", "--skip-log-bin",
    ]
    return AddonPlan(name=name, type="mysql", prefix=prefix, values=values, argv=argv, cwd=str(addon_dir))


def _run(argv: list[str], what: str, input: bytes | None = None, box: TenantBox | None = None,
         binds: list[str] | None = None, **kwargs) -> None:
    if box is not None:
        argv = box.wrap(argv, binds or [], name=f"setup-{Path(argv[0]).name}")
    try:
        done = subprocess.run(
            argv, input=input, capture_output=True, timeout=120, cwd="/", start_new_session=True, **kwargs
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ExecutorError(f"{what} failed: {exc}")
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()[-3:]
        raise ExecutorError(f"{what} failed (exit {done.returncode}): {' | '.join(tail)}")


def remove_data(addon_dir: Path) -> None:
    """Delete an addon's data, including a data directory kept outside the state dir."""
    link = addon_dir / "data"
    if link.is_symlink():
        target = link.resolve()
        shutil.rmtree(target.parent, ignore_errors=True)
    shutil.rmtree(addon_dir, ignore_errors=True)
