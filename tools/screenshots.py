"""Screenshots of the console's main pages at a phone's and a desktop's width.

    .venv/bin/python tools/screenshots.py OUT_DIR [--widths 390,1440] [--port 8765] [--keep]

Starts a standalone console on a fresh data directory (SQLite, the local cluster, the embedded
worker), fills it with example data (an organization, a project, the guestbook deployed to DEV
from examples/guestbook when redis-server is installed, else a one-process service; environment
variables, project configs and a branch rule; a finished pipeline run), signs in with Debian's
Chromium and saves each page as OUT_DIR/<page>-<width>.png (the whole page, not only the
screen). Everything it started is stopped and its data directory removed at the end (`--keep`
keeps the directory and prints it). Exit 0 when every page answered 200."""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
USER, PASSWORD = "demo", "demo-screenshots-pw"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
SIMPLE_SPEC = """\
version: "2.0"
envs: {GREETING: from-dice-yml}
services:
  hello:
    cmd: python3 -m http.server $PORT
    ports:
      - port: 8080
        expose: true
    resources: {cpu: 0.1, mem: 64}
"""
PIPELINE = """\
version: "1.1"
name: build
stages:
  - stage:
      - custom-script: {alias: compile, commands: ["echo compiling", "echo done"]}
  - stage:
      - custom-script: {alias: test, commands: ["echo 3 tests passed"]}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(data_dir: Path) -> str:
    """Migrate the fresh database and make the example tenant; returns an API token."""
    os.environ["DICE_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dice_console.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from apps.clusters.models import Cluster
    from apps.deploy import variables
    from apps.pipelines import services as pipelines
    from apps.projects import services

    call_command("migrate", verbosity=0)
    Cluster.local()
    user = get_user_model().objects.create_user(USER, password=PASSWORD, is_staff=True, is_superuser=True)
    org = services.create_organization(user, slug="acme", name="ACME Corp", owner=user)
    project = services.create_project(user, org, slug="shop", name="Shop", description="the web shop")
    app = services.create_application(user, project, slug="guestbook", name="Guestbook",
                                      description="a front end, an API and Redis")
    services.create_application(user, project, slug="api", name="API")
    variables.set_variable(user, app, "DEV", name="GREETING", value="hello from the console")
    variables.set_variable(user, app, "DEV", name="FEATURE_FLAGS", value="search,cart")
    variables.set_variable(user, app, "DEV", name="PAYMENT_API_KEY", value="sk-demo-never-shown", secret=True)
    variables.set_variable(user, app, "PROD", name="GREETING", value="welcome")
    pipelines.set_config(user, project, key="REGION", value="eu-west")
    pipelines.set_config(user, project, key="DB_PASSWORD", value="demo-secret", secret=True)
    pipelines.save_branch_rule(user, project, pattern="release/*", workspace="STAGING")
    _, key = services.create_token(user, name="screenshots")
    from django.db import connections

    connections.close_all()
    return key


class Console:
    """`manage.py standalone` on the data directory, in its own process group."""

    def __init__(self, data_dir: Path, port: int):
        env = {**os.environ, "DICE_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "dice_console.settings"}
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(data_dir / "console.log", "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "standalone", "--host", "127.0.0.1", "--port", str(port), "--no-migrate"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the console ended at start; see {data_dir / 'console.log'}")
            with contextlib.suppress(OSError), urllib.request.urlopen(self.url + "/login/", timeout=2):
                return
            time.sleep(0.3)
        raise SystemExit("the console did not answer within 60 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


class Api:
    def __init__(self, url: str, token: str):
        self.url, self.token = url, token

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}/api/{path}", data=data, method=method, headers={
            "Authorization": f"Token {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                text = response.read()
                return json.loads(text) if text else {}
        except urllib.error.HTTPError as exc:
            raise SystemExit(f"{method} /api/{path}: {exc.code} {exc.read()[:500]!r}") from None


def example_runs(api: Api) -> dict:
    """The guestbook (or a one-process service) deployed to DEV, and a pipeline run; waits for both."""
    sys.path.insert(0, str(ROOT))
    from apps.deploy.bundles import make_archive

    app = api.call("GET", "applications/?org=acme&project=shop&slug=guestbook")["results"][0]
    guestbook = ROOT / "examples" / "guestbook"
    if shutil.which("redis-server"):
        spec, files = (guestbook / "dice.yml").read_text(), make_archive(guestbook)
    else:
        spec, files = SIMPLE_SPEC, None
    body = {"application": app["id"], "workspace": "DEV", "runtime": "main", "spec_text": spec,
            "description": "the example, deployed by tools/screenshots.py"}
    if files:
        body["files_base64"] = base64.b64encode(files).decode()
    deployment = api.call("POST", "deployments/", body)
    run = api.call("POST", "pipeline-runs/", {"application": app["id"], "source": PIPELINE})
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        deployment = api.call("GET", f"deployments/{deployment['id']}/")
        run = api.call("GET", f"pipeline-runs/{run['id']}/")
        if deployment["status"] not in ("queued", "deploying") and run["status"] not in ("pending", "running", "queued"):
            break
        time.sleep(1)
    print(f"deployment {deployment['id']}: {deployment['status']}; pipeline run {run['id']}: {run['status']}")
    return {"app": app, "deployment": deployment, "run": run}


def pages(made: dict) -> list[tuple[str, str]]:
    base = "/orgs/acme/shop/guestbook"
    out = [
        ("organizations", "/orgs/"), ("organization", "/orgs/acme/"), ("project", "/orgs/acme/shop/"),
        ("project-settings", "/orgs/acme/shop/settings/"), ("application", f"{base}/"),
        ("variables", f"{base}/variables/DEV/"), ("releases", f"{base}/releases/"), ("release", f"{base}/releases/1/"),
        ("runtimes", f"{base}/runtimes/"), ("runtime", f"{base}/runtimes/DEV/main/"),
        ("pipelines", f"{base}/pipelines/"), ("run", f"{base}/pipelines/runs/{made['run']['id']}/"),
        ("deployments", "/deployments/"), ("all-runs", "/pipelines/"), ("clusters", "/clusters/"),
        ("cluster-local", "/clusters/local/"), ("resources", "/reports/resources/"), ("cmdb", "/cmdb/"),
        ("audit", "/audit/"), ("tokens", "/tokens/"),
    ]
    tasks = made["run"].get("tasks") or []
    if tasks:
        out.append(("task-log", f"{base}/pipelines/tasks/{tasks[0]['id']}/log/"))
    return out


def shoot(url: str, out: Path, widths: list[int], targets: list[tuple[str, str]]) -> list[str]:
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("DICE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("no chromium: apt-get install chromium")
    problems, saved = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        for width in widths:
            context = browser.new_context(viewport={"width": width, "height": 900})
            page = context.new_page()
            page.set_default_timeout(20000)
            page.goto(url + "/login/")
            page.fill("input[name=username]", USER)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(url + "/orgs/")
            for name, path in targets:
                response = page.goto(url + path, wait_until="networkidle")
                if response is None or response.status != 200:
                    problems.append(f"{path}: {response.status if response else 'no answer'}")
                page.wait_for_timeout(300)  # the pages' own after-load requests (drift, graphs)
                target = out / f"{name}-{width}.png"
                page.screenshot(path=str(target), full_page=True)
                saved.append(target.name)
            context.close()
        browser.close()
    for p in problems:
        print(f"page did not answer 200: {p}", file=sys.stderr)
    return saved if not problems else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the PNG files (made if missing)")
    parser.add_argument("--widths", default="390,1440", help="comma-separated viewport widths (default 390,1440)")
    parser.add_argument("--port", type=int, default=0, help="the console's port (default: a free one)")
    parser.add_argument("--keep", action="store_true", help="keep the data directory (its path is printed)")
    args = parser.parse_args(argv)
    widths = [int(w) for w in args.widths.split(",") if w.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="dice-screens-"))
    console = None
    try:
        token = seed(data_dir)
        console = Console(data_dir, args.port or free_port())
        api = Api(console.url, token)
        made = example_runs(api)
        saved = shoot(console.url, args.out.resolve(), widths, pages(made))
        with contextlib.suppress(SystemExit):  # stop what runs on the local cluster
            runtime = made["deployment"]["runtime"]
            api.call("DELETE", f"runtimes/{runtime}/")
    finally:
        if console is not None:
            console.stop()
        if args.keep:
            print(f"data directory kept: {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    for name in saved:
        print(args.out / name)
    return 0 if saved else 1


if __name__ == "__main__":
    sys.exit(main())
