"""`manage.py standalone` as a newcomer runs it: one process, SQLite, login page, API, WebSocket, Ctrl-C."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import requests

from tests.conftest import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(data_dir, port, extra_env=None):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update({"DICE_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", **(extra_env or {})})
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "standalone", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C stops" in line:
            return proc, "".join(lines)
    proc.kill()
    raise AssertionError("standalone did not start:\n" + "".join(lines) + proc.stdout.read())


def _stop(proc):
    proc.send_signal(signal.SIGINT)
    try:
        rest = proc.communicate(timeout=20)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("standalone did not stop on SIGINT within 20 s") from None
    return proc.returncode, rest


def _login(base, username, password):
    session = requests.Session()
    page = session.get(f"{base}/login/", timeout=10)
    assert page.status_code == 200 and "Sign in" in page.text
    csrf = session.cookies["csrftoken"]
    response = session.post(
        f"{base}/login/", data={"username": username, "password": password, "csrfmiddlewaretoken": csrf},
        headers={"Referer": f"{base}/login/"}, timeout=10, allow_redirects=False,
    )
    return session, response


def test_standalone_first_start_login_api_websocket_and_ctrl_c(tmp_path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc, banner = _start(tmp_path, port, {"DICE_ADMIN_TOKEN": "dice_fixed_automation_token"})
    try:
        assert f"running at {base}/" in banner
        match = re.search(r"Admin user: admin  password: (\S+)", banner)
        assert match, banner
        session, response = _login(base, "admin", match.group(1))
        assert response.status_code == 302, response.text[:500]
        assert session.get(f"{base}/orgs/", timeout=10).status_code == 200
        assert session.get(f"{base}/static/vendor/pico/pico.min.css", timeout=10).status_code == 200
        me = requests.get(f"{base}/api/me/", headers={"Authorization": "Bearer dice_fixed_automation_token"}, timeout=10)
        assert me.json()["username"] == "admin"

        from websockets.sync.client import connect

        cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
        with connect(f"ws://127.0.0.1:{port}/ws/events/", additional_headers={"Cookie": cookie},
                     origin=f"http://127.0.0.1:{port}") as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
            created = requests.post(f"{base}/api/orgs/", json={"slug": "live"}, timeout=10,
                                    headers={"Authorization": "Bearer dice_fixed_automation_token"})
            assert created.status_code == 201
            event = json.loads(ws.recv(timeout=10))
            assert event["type"] == "audit" and event["event"]["object_repr"] == "live"
    finally:
        code, rest = _stop(proc)
    assert code == 0, rest
    assert "Stopped." in rest
    # WAL is a persistent property of the database file.
    import sqlite3

    with sqlite3.connect(tmp_path / "dice.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    # Second start: the password is not shown again, and the fixed one is honoured.
    proc, banner = _start(tmp_path, port, {"DICE_ADMIN_PASSWORD": "s3cret-fixed"})
    try:
        assert "password:" not in banner
        _, response = _login(base, "admin", "s3cret-fixed")
        assert response.status_code == 302
    finally:
        _stop(proc)


MIGRATE_COUNTER = """
import sys
import django
from django.core.management import execute_from_command_line
from django.db.models.signals import pre_migrate

django.setup()
pre_migrate.connect(lambda sender, **kw: sender.label == "auth" and print("dice-test: migrate ran", flush=True),
                    weak=False)
execute_from_command_line(["manage.py", *sys.argv[1:]])
"""


def test_make_run_migrates_once(tmp_path):
    """`make run` is one `manage.py standalone`, which runs `migrate` once (it ran twice before:
    half of a warm start). Counted by Django's pre_migrate signal, on a first and a warm start."""
    recipe = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    commands = [line for line in recipe.splitlines() if "manage.py" in line]
    assert len(commands) == 1 and " standalone " in commands[0], recipe
    assert "migrate" not in recipe
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update({"DICE_DATA_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1", "DJANGO_SETTINGS_MODULE": "dice_console.settings"})
    for start in ("first", "warm"):
        proc = subprocess.Popen([sys.executable, "-c", MIGRATE_COUNTER, "standalone", "--port", str(_free_port())],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C stops" in line:
                break
        code, rest = _stop(proc)
        output = "".join(lines) + rest
        assert "Ctrl-C stops" in output, output
        assert output.count("dice-test: migrate ran") == 1, f"{start} start:\n{output}"
