"""The scale tier's console: production mode's processes (uvicorn web processes, Celery workers,
beat) started from this checkout against the test database and this tier's Redis database."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, make_org


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Console:
    """The production processes, each in its own session, its output in a file."""

    def __init__(self, tmp: Path, env: dict):
        self.tmp, self.env = tmp, env
        self.procs: dict[str, subprocess.Popen] = {}
        self.ports = {"web1": _free_port(), "web2": _free_port()}

    def command(self, name: str) -> list[str]:
        if name.startswith("web"):
            return [sys.executable, "-m", "uvicorn", "dice_console.asgi:application", "--host", "127.0.0.1",
                    "--port", str(self.ports[name]), "--log-level", "warning", "--no-access-log"]
        if name.startswith("worker"):
            return [sys.executable, "-m", "celery", "-A", "dice_console", "worker", "-n", f"{name}@%h",
                    "--loglevel", self.env.get("DICE_SCALE_WORKER_LOGLEVEL", "WARNING")]
        return [sys.executable, "-m", "celery", "-A", "dice_console", "beat", "--loglevel", "WARNING"]

    def start(self, name: str) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - kept by the process
        # As the README's production section says: web processes never supervise the local cluster
        # and take their database connections from a pool.
        env = {**self.env, "DICE_LOCAL_SUPERVISE": "0", "DICE_DB_POOL": "20"} if name.startswith("web") else self.env
        proc = subprocess.Popen(self.command(name), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def kill(self, name: str) -> None:
        os.kill(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait(10)

    def wait_listening(self, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.procs[name].poll() is None, self.tail(name)
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.ports[name]), 0.5):
                return
            time.sleep(0.1)
        raise AssertionError(f"{name} did not listen: {self.tail(name)}")

    def tail(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def rss_mib(self) -> float:
        """Resident memory of the console's processes (web, workers, beat), not the steps' or services'."""
        total = 0
        for proc in self.procs.values():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        return total / 1024

    def stop(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGTERM if name.startswith("web") else signal.SIGKILL)
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(15)
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, signal.SIGKILL)


    def api(self, token: str):
        """A client of the API spread over the web processes: request n goes to web n % 2 first,
        to the other one while that one is down."""
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        webs = sorted(self.ports)

        def call(method: str, path: str, n: int = 0, **kwargs):
            for attempt in range(40):
                web = webs[(n + attempt) % len(webs)]
                try:
                    response = session.request(method, f"http://127.0.0.1:{self.ports[web]}/api/{path}",
                                               timeout=30, **kwargs)
                except requests.ConnectionError:
                    time.sleep(0.25)
                    continue
                assert response.status_code < 300, (path, response.status_code, response.text[:500])
                return response.json()
            raise AssertionError(f"no web process answered {method} {path}")

        return call


def supervisor_pid(local_root: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int((local_root / "supervisor.lock").read_text().strip())
    return None


@pytest.fixture
def console(transactional_db, tmp_path):
    import redis
    from django.contrib.auth import get_user_model
    from django.db import connection

    from apps.projects import services

    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()  # this tier's own Redis database
    user = get_user_model().objects.create_user("scale-owner", password="scale-password")
    org = make_org(user, "scale")
    project = services.create_project(user, org, slug="load")
    app = services.create_application(user, project, slug="svc")
    _, token = services.create_token(user, name="scale")

    db = connection.settings_dict
    database_url = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    drop = ("DJANGO_SETTINGS_MODULE", "DICE_LOCAL_ROOT", "DICE_PIPELINE_ROOT", "DICE_DEPLOY_FILES")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update({
        "DATABASE_URL": database_url, "DICE_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1",
        "DICE_SECRET_KEY": "scale-tier-secret-key", "DICE_PIPELINE_MAX_RUNS_PER_PROJECT": "20",
        # Messages a killed worker held come back after 20 s, during the run: delivered twice, done once.
        "DICE_BROKER_VISIBILITY_TIMEOUT": "20",
        "DICE_DEPLOY_DEGRADED_GRACE": "60",
    })
    console = Console(tmp_path, env)
    # Started before anything else of the test, ended by the teardown (or by pytest's death):
    # it kills the console's processes and destroys what the local cluster runs (janitor.py).
    janitor = subprocess.Popen([sys.executable, "-m", "tests.scale.janitor", str(tmp_path / "data")], cwd=ROOT,
                               env=env, stdin=subprocess.PIPE, stdout=open(tmp_path / "janitor.log", "wb"),  # noqa: SIM115
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield console, token, app, tmp_path / "data"
    finally:
        console.stop()
        janitor.stdin.close()
        try:
            janitor.wait(120)
        finally:
            # What the runtimes' destroy did not stop is a leak of the tier: killed, and named.
            from tests.scale.janitor import tier_processes

            left = tier_processes(tmp_path / "data")
            for pid in left:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        report = (tmp_path / "janitor.log").read_text(errors="replace")
        assert janitor.returncode == 0 and "left running" not in report and not left, (report, left)
