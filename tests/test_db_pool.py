"""DICE_DB_POOL: a web process takes its PostgreSQL connections from a pool and gives them back
when a request ends, instead of starting a PostgreSQL backend for every request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What a web process does per request under ASGI: a thread of its own opens the connection, runs a
# query, and closes it at the end of the request (CONN_MAX_AGE 0). 3 threads x 10 requests.
REQUESTS = """
import json, threading, django
django.setup()
from django.db import connection, connections
pids = []
def serve():
    for _ in range(10):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pids.append(cursor.fetchone()[0])
        connections.close_all()  # the end of the request
threads = [threading.Thread(target=serve) for _ in range(3)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"requests": len(pids), "backends": len(set(pids))}))
"""


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "dice_console.settings", **env}
    environment.pop("DICE_DB_POOL", None)
    environment.update(env)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.postgres
def test_requests_reuse_pooled_backends_instead_of_starting_one_each():
    assert os.environ.get("DATABASE_URL", "").startswith("postg")
    pooled = _run(REQUESTS, DICE_DB_POOL="3")
    assert pooled.returncode == 0, pooled.stderr
    figures = json.loads(pooled.stdout.strip().splitlines()[-1])
    assert figures["requests"] == 30 and figures["backends"] <= 3, figures
    unpooled = _run(REQUESTS)  # without it: a backend per request (what the pool is for)
    assert unpooled.returncode == 0, unpooled.stderr
    assert json.loads(unpooled.stdout.strip().splitlines()[-1])["backends"] == 30


@pytest.mark.parametrize("value", ["many", "-1", "5000"])
def test_a_bad_pool_size_stops_the_process_naming_the_variable(value):
    done = _run("import django; django.setup()", DATABASE_URL="postgres://dice:dice@127.0.0.1:1/none",
                DICE_DB_POOL=value)
    assert done.returncode != 0
    assert "DICE_DB_POOL must be a number of connections from 0 to 1000" in done.stderr and repr(value) in done.stderr
