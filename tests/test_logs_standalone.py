"""Live logs through a real standalone server process: a pipeline step's output reaches a
WebSocket client (API token in a header) exactly once across a reconnect, the raw download has
it all, `dice logs` prints it, and (with Chromium) the viewer renders it with colours."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import requests

from tests.conftest import ROOT, chromium_path
from tests.test_standalone import _free_port, _start, _stop

TOKEN = "dice_logs_standalone_token"
LINES = 5000
PIPELINE = f"""
version: "1.1"
stages:
  - stage:
      - custom-script:
          alias: noisy
          commands:
            - "i=1; while [ $i -le {LINES} ]; do printf '\\\\033[32mline\\\\033[0m %s\\\\n' $i; i=$((i+1)); done"
            - "echo 'ERROR: something broke' >&2"
            - "sleep 0.5"
"""


def _api(base, method, path, **kwargs):
    response = requests.request(method, f"{base}/api/{path}", headers={"Authorization": f"Bearer {TOKEN}"},
                                timeout=20, **kwargs)
    assert response.status_code < 300, (path, response.status_code, response.text[:500])
    return response.json()


def _collect(ws, stream, got, stop_after=None):
    while True:
        message = json.loads(ws.recv(timeout=30))
        assert message["stream"] == stream
        if message["type"] == "lines":
            got.extend(line[0] for line in message["lines"])
            if stop_after and len(got) >= stop_after:
                return None
        elif message["type"] == "end":
            return message


def test_step_output_to_websocket_download_cli_and_viewer(tmp_path):
    from websockets.sync.client import connect

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc, banner = _start(tmp_path, port, {"DICE_ADMIN_TOKEN": TOKEN})
    try:
        _api(base, "POST", "orgs/", json={"slug": "acme"})
        project = _api(base, "POST", "projects/", json={"organization": "acme", "slug": "shop"})
        app = _api(base, "POST", "applications/", json={"organization": "acme", "project": project["id"],
                                                        "slug": "web", "repo_url": "https://git.example/web"})
        run = _api(base, "POST", "pipeline-runs/", json={"application": app["id"], "source": PIPELINE})
        deadline = time.monotonic() + 60
        task = None
        while task is None and time.monotonic() < deadline:
            tasks = _api(base, "GET", f"pipeline-runs/{run['id']}/")["tasks"]
            task = next((t for t in tasks if t["alias"] == "noisy" and t["status"] != "queued"), None)
            time.sleep(0.1)
        assert task is not None
        stream = f"task:{task['id']}"
        url = f"ws://127.0.0.1:{port}/ws/logs/"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        got = []
        with connect(url, additional_headers=headers, origin=base) as ws:
            ws.send(json.dumps({"type": "subscribe", "stream": stream, "from": 0}))
            assert _collect(ws, stream, got, stop_after=1000) is None
        with connect(url, additional_headers=headers, origin=base) as ws:  # resume after a drop
            ws.send(json.dumps({"type": "subscribe", "stream": stream, "from": got[-1]}))
            end = _collect(ws, stream, got)
        assert got == list(range(1, end["last"] + 1))
        final = _api(base, "GET", f"task-runs/{task['id']}/")
        assert final["status"] == "success" and final["last_line"] == end["last"]

        raw = requests.get(f"{base}/api/logs/tasks/{task['id']}/raw/", headers=headers, timeout=20).text
        printed = [line for line in raw.splitlines() if "line" in line and "ERROR" not in line]
        assert printed, raw[:500]
        assert printed == [f"\x1b[32mline\x1b[0m {i}" for i in range(1, LINES + 1)]
        assert "ERROR: something broke" in raw

        env = {**os.environ, "DICE_SERVER": base, "DICE_TOKEN": TOKEN}
        cli = subprocess.run([sys.executable, "-m", "dice_cli.main", "logs", f"{run['id']}/noisy", "-f",
                              "--timeout", "30"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert cli.returncode == 0, cli.stderr
        assert cli.stdout == raw

        if chromium_path() is not None:
            password = re.search(r"Admin user: admin  password: (\S+)", banner).group(1)
            # In a thread of its own: the session's Playwright may keep a loop running in this one.
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(1) as pool:
                pool.submit(_check_viewer, base, task, end["last"], password).result()
    finally:
        _stop(proc)


def _check_viewer(base, task, last, password):
    """The viewer in headless Chromium: every line rendered with colours, complete, first error, search."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return
    from tests.conftest import CHROMIUM_ARGS

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(20000)
            page.goto(f"{base}/login/")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", password)
            page.click("button[type=submit], input[type=submit]")
            page.wait_for_url(lambda url: "/login/" not in url)
            logs = []
            page.on("console", lambda m: logs.append(m.text))
            page.on("pageerror", lambda e: logs.append(str(e)))
            page.goto(f"{base}/orgs/acme/shop/web/pipelines/tasks/{task['id']}/log/#L42")
            try:
                page.wait_for_selector(f'[data-complete="{last}"]', state="attached")
            except Exception:
                raise AssertionError((logs, page.locator(".log-state").inner_text()))
            page.wait_for_function(f"document.querySelectorAll('.log-line').length === {last}")
            assert page.locator("#L1 .ansi-green").inner_text() == "line"
            assert "log-target" in page.locator("#L42").get_attribute("class")  # the #L42 link
            page.click(".log-first-error")
            assert "ERROR: something broke" in page.locator(".log-target").inner_text()
            page.fill(".log-search", "line 4999")
            assert page.locator(".log-count").inner_text() == "1 of 1"
            assert "line 4999" in page.locator(".log-hit-current").inner_text()
        finally:
            browser.close()
