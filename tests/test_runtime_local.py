"""Issue 6, end to end: the guestbook deployed through the console's API onto the local cluster
(its folder uploaded with the release), a page served front -> API -> Redis at the URL the runtime
reports, scaling, a killed process restarting, a rollback, a delete that leaves no process; the
same with a git repository instead of uploaded files; and `dice deploy --wait` + `dice runtime
status` against a live server.

Rollouts run eagerly (the Celery task runs inside the request that dispatched it, after commit):
SQLite's in-memory test database is shared with pytest-django's live server thread but not with
a worker thread. Every process is destroyed afterwards, whatever happened."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from apps.deploy.bundles import make_archive
from scheduler.base import ClusterRef
from tests.conftest import make_org
from tests.local.conftest import _recorded_processes, pid_alive, wait_for

ROOT = Path(__file__).resolve().parents[1]
GUESTBOOK = ROOT / "examples" / "guestbook"

pytestmark = pytest.mark.needs_binary("redis-server", "redis-server")


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def sign(front: str, text: str) -> None:
    data = urllib.parse.urlencode({"text": text}).encode()
    with urllib.request.urlopen(urllib.request.Request(front + "/sign", data=data), timeout=10) as response:
        assert response.status == 200


@pytest.fixture
def local_cluster(settings, tmp_path):
    """A tmp state root and files directory, eager rollouts; afterwards every process is gone."""
    from dice_console.celery import app as celery_app
    from scheduler.local import executor_for

    root = tmp_path / "local"
    settings.DICE_LOCAL_ROOT = root
    settings.DICE_DEPLOY_FILES = tmp_path / "files"
    settings.DICE_DEPLOY_POLL_INTERVAL = 0.1
    settings.DICE_DEPLOY_TIMEOUT = 90
    settings.DICE_DEPLOY_DEGRADED_GRACE = 1
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    ref = ClusterRef(name="local", kind="local", config={"root": str(root)})
    try:
        yield executor_for(ref)
    finally:
        celery_app.conf.task_always_eager = eager
        known = _recorded_processes(root) if root.exists() else []
        executor = executor_for(ref)
        try:
            executor.destroy_all()
        finally:
            executor.close()
        left = [pid for pid, start in known if pid_alive(pid)]
        for pid in left:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
        assert not left, f"processes left running: {left}"


@pytest.fixture
def shop(transactional_db):
    """acme/shop/guestbook (no repository) owned by erin, who deploys through the API."""
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from apps.projects import services

    user = get_user_model().objects.create_user("erin")
    org = make_org(user, "acme")
    project = services.create_project(user, org, slug="shop")
    app = services.create_application(user, project, slug="guestbook")
    api = APIClient()
    api.force_authenticate(user)
    return {"user": user, "app": app, "api": api}


def _deploy(api, app, text: str, files: bytes) -> dict:
    r = api.post("/api/deployments/", {
        "application": app.pk, "workspace": "DEV", "runtime": "main", "spec_text": text,
        "files_base64": base64.b64encode(files).decode()}, format="json")
    assert r.status_code == 201, r.content
    return r.json()


def _service(runtime: dict, name: str) -> dict:
    return next(s for s in runtime["status"]["services"] if s["name"] == name)


def test_guestbook_deployed_scaled_healed_rolled_back_and_deleted(local_cluster, shop):
    from apps.deploy.models import Deployment, Runtime

    api, app = shop["api"], shop["app"]
    text = (GUESTBOOK / "dice.yml").read_text()
    files = make_archive(GUESTBOOK)
    first = _deploy(api, app, text, files)
    assert first["status"] == "healthy", first
    assert [t["to_status"] for t in first["transitions"]] == ["queued", "deploying", "healthy"]

    runtime = api.get(f"/api/runtimes/{first['runtime']}/").json()
    assert runtime["status"]["health"] == "Healthy" and runtime["cluster"] == "local"
    front = _service(runtime, "front")
    assert front["exposed"] and front["url"].startswith("http://127.0.0.1:")
    assert "<h1>Dice guestbook</h1>" in get(front["url"] + "/")
    sign(front["url"], "signed through the console")
    assert "<li>signed through the console</li>" in get(front["url"] + "/")  # front -> API -> Redis
    assert {a["name"] for a in runtime["status"]["addons"]} == {"guestbook-redis"}

    # Scale the API to two replicas.
    r = api.post(f"/api/runtimes/{runtime['id']}/scale/", {"service": "api", "replicas": 2}, format="json")
    assert r.status_code == 200, r.content
    status = lambda: api.get(f"/api/runtimes/{runtime['id']}/").json()  # noqa: E731
    wait_for(lambda: _service(status(), "api")["ready"] == 2, 30, "two api replicas ready")

    # Kill one replica's process: the local cluster restarts it.
    ref = Runtime.objects.get(pk=runtime["id"])
    from apps.deploy.executors import runtime_ref

    victim = local_cluster.pids(runtime_ref(ref))["api-1"]["process"]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: (api_s := _service(status(), "api"))["ready"] == 2
             and next(x for x in api_s["replicas"] if x["name"] == "api-1")["restarts"] == 1,
             30, "api-1 restarted")
    assert local_cluster.pids(runtime_ref(ref))["api-1"]["process"] != victim
    assert "<li>signed through the console</li>" in get(front["url"] + "/")

    # A second release (its own files), then a rollback to the first.
    second = _deploy(api, app, text.replace("GUESTBOOK_TITLE: Dice guestbook", "GUESTBOOK_TITLE: Guestbook two"),
                     files)
    assert second["status"] == "healthy", second
    assert "<h1>Guestbook two</h1>" in get(front["url"] + "/")
    assert _service(status(), "api")["desired"] == 1  # a deployment returns to the spec's replicas
    r = api.post(f"/api/runtimes/{runtime['id']}/rollback/", {"release": first["release"]}, format="json")
    assert r.status_code == 201, r.content
    back = api.get(f"/api/deployments/{r.json()['id']}/").json()
    assert back["status"] == "healthy" and back["rollback_of"] == second["id"]
    assert back["version"] == first["version"]
    assert "<h1>Dice guestbook</h1>" in get(front["url"] + "/")
    assert "<li>signed through the console</li>" in get(front["url"] + "/")  # Redis data kept

    # Delete: no process is left, nor the runtime.
    pids = {p for entry in local_cluster.pids(runtime_ref(ref)).values() for p in entry.values() if p}
    assert len(pids) == 6  # front + api shims and processes, and the redis addon's
    assert api.delete(f"/api/runtimes/{runtime['id']}/").status_code == 204
    assert [p for p in pids if pid_alive(p)] == []
    assert not Runtime.objects.filter(pk=runtime["id"]).exists()
    assert not Deployment.objects.filter(runtime_id=runtime["id"]).exists()
    assert not (Path(local_cluster.root) / "runtimes" / runtime_ref(ref).namespace).exists()


def _git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example"})


def test_an_application_with_a_repository_runs_from_a_clone(local_cluster, shop, tmp_path, settings):
    from apps.deploy import deployments
    from apps.deploy.models import Deployment
    from apps.deploy.services import create_release
    from apps.projects import services

    repo = tmp_path / "repo"
    shutil.copytree(GUESTBOOK, repo, ignore=shutil.ignore_patterns("__pycache__"))
    _git("init", "-q", "-b", "main", cwd=repo)
    _git("add", ".", cwd=repo)
    _git("commit", "-q", "-m", "guestbook", cwd=repo)
    settings.DICE_REPO_ALLOW_LOCAL_PATHS = True  # a single-user console may clone from its own disk
    app = services.update_application(shop["user"], shop["app"], repo_url=f"file://{repo}")
    release = create_release(shop["user"], app, spec_text=(repo / "dice.yml").read_text())
    d = deployments.deploy(shop["user"], app, "DEV", release=release)  # eager: runs after commit
    d = Deployment.objects.get(pk=d.pk)
    assert d.status == "healthy", d.message
    workdirs = list((tmp_path / "files" / "workdirs").iterdir())
    assert [w.name for w in workdirs] == [f"release-{release.pk}-git"]
    assert (workdirs[0] / ".git").is_dir() and (workdirs[0] / "front.py").is_file()
    front = next(s for s in shop["api"].get(f"/api/runtimes/{d.runtime_id}/").json()["status"]["services"]
                 if s["name"] == "front")
    assert "<h1>Dice guestbook</h1>" in get(front["url"] + "/")
    deployments.delete_runtime(shop["user"], d.runtime)


def test_a_crashing_service_fails_the_rollout_with_the_reason(local_cluster, shop):
    from apps.deploy import deployments
    from apps.deploy.models import Deployment
    from apps.deploy.services import create_release

    # A replica without a health check is ready once it has been up 1 s (UP_WITHOUT_CHECK): the
    # crash must come before that. python3 -c took over 1 s just to start on a loaded machine
    # (the rollout went healthy, then the process exited 3); the shell exits within milliseconds.
    text = 'version: "2.0"\nservices:\n  broken:\n    cmd: exit 3\n'
    release = create_release(shop["user"], shop["app"], spec_text=text)
    d = deployments.deploy(shop["user"], shop["app"], "DEV", release=release)
    d = Deployment.objects.get(pk=d.pk)
    assert d.status == "failed"
    assert d.message.startswith("unhealthy for 1s: broken: crash looping: exit 3"), d.message
    deployments.delete_runtime(shop["user"], d.runtime)


# ---- the CLI against a live server --------------------------------------------------------------------


@pytest.fixture
def cli(local_cluster, shop, dice_cli):
    return dice_cli(shop["user"])


def test_dice_deploy_wait_then_runtime_status(cli, tmp_path):
    folder = tmp_path / "guestbook"  # a copy, so running it leaves nothing in the repository
    shutil.copytree(GUESTBOOK, folder, ignore=shutil.ignore_patterns("__pycache__"))
    code, out, err = cli("deploy", "acme/shop/guestbook", "--workspace", "DEV", "--spec",
                         str(folder / "dice.yml"), "--wait")
    assert code == 0, err
    assert "healthy" in out and "acme/shop/guestbook v1 -> DEV/main" in out

    code, out, err = cli("runtime", "status", "acme/shop/guestbook", "--workspace", "DEV", "--format", "json")
    assert code == 0, err
    status = json.loads(out)
    assert status["health"] == "Healthy" and status["runtime"] == "main" and status["version"] == 1
    front = next(s for s in status["services"] if s["name"] == "front")
    assert front["ready"] == front["desired"] == 1
    assert "<h1>Dice guestbook</h1>" in get(front["url"] + "/")

    code, out, _ = cli("runtime", "status", "acme/shop/guestbook", "-w", "dev")
    assert code == 0 and "front" in out and front["url"] in out and "guestbook-redis (addon)" in out
    code, out, err = cli("runtime", "scale", "acme/shop/guestbook", "-w", "DEV", "api", "2")
    assert code == 0, err
    code, _, err = cli("runtime", "scale", "acme/shop/guestbook", "-w", "DEV", "nope", "2")
    assert code == 1 and "has no service 'nope'" in err
    code, out, err = cli("runtime", "delete", "acme/shop/guestbook", "-w", "DEV")
    assert code == 0, err
    code, _, err = cli("runtime", "status", "acme/shop/guestbook", "-w", "DEV")
    assert code == 1 and "has no runtime 'main' in DEV" in err
