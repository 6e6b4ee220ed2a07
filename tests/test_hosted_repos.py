# ruff: noqa: F811
"""Hosted repositories over smart HTTP, driven by the plain `git` client against a live console:
clone and push with an API token, read needs view and push needs change, a push runs the pipelines
its commit declares, and (end to end) a push of the guestbook deploys it and its front answers."""

from __future__ import annotations

import base64
import subprocess
import urllib.request
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from tests.guestbook_helpers import GUESTBOOK
from tests.pipelines_helpers import engine, wait_until  # noqa: F401
from tests.registry_helpers import registry_url  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

ECHO = 'version: "1.1"\non:\n  push:\n    branches: [main]\nstages:\n  - stage:\n      - echo: {params: {msg: hi}}\n'


def _url(live_server, tenant, user: str = "", token: str = "") -> str:
    parts = urlsplit(live_server.url)
    auth = f"{quote(user or 'x')}:{quote(token)}@" if token else ""
    return f"{parts.scheme}://{auth}{parts.netloc}/git/{tenant.org.slug}/{tenant.project.slug}/{tenant.app.slug}.git"


def git(*args, cwd=None, check=True):
    env = {"GIT_AUTHOR_NAME": "Ann", "GIT_AUTHOR_EMAIL": "a@example.org", "GIT_COMMITTER_NAME": "Ann",
           "GIT_COMMITTER_EMAIL": "a@example.org", "HOME": str(cwd or "/tmp"), "PATH": "/usr/bin:/bin",
           "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def _work(tmp_path: Path, files: dict[str, str]) -> Path:
    work = tmp_path / "work"
    git("init", "-q", "-b", "main", str(work))
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    git("add", ".", cwd=work)
    git("commit", "-q", "-m", "first", cwd=work)
    return work


@pytest.fixture
def hosted(settings, tmp_path):
    settings.DICE_REPOS_ROOT = str(tmp_path / "repos")


def test_clone_and_push_with_a_token_read_needs_view_and_push_needs_change(hosted, live_server, tenant_a, tenant_b,
                                                                            tmp_path):
    from apps.pipelines.models import PipelineRun
    from apps.projects import services
    from apps.projects.choices import Role

    work = _work(tmp_path, {"pipeline.yml": ECHO, ".dice/pipelines/other.yml": ECHO.replace("[main]", "[dev]")})
    anonymous = git("push", _url(live_server, tenant_a), "main", cwd=work, check=False)
    assert anonymous.returncode != 0 and "could not read Username" in anonymous.stderr  # a 401 challenge
    stranger = git("push", _url(live_server, tenant_a, token=tenant_b.token), "main", cwd=work, check=False)
    assert stranger.returncode != 0 and "not found" in stranger.stderr
    assert PipelineRun.objects.count() == 0

    pushed = git("push", "-q", _url(live_server, tenant_a, token=tenant_a.token), "main", cwd=work)
    sha = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    (run,) = PipelineRun.objects.all()  # pipeline.yml matches main; .dice/pipelines/other.yml does not
    # The pusher reads what the push started, with the run's link, as git shows a hook's output.
    assert (f"remote: dice: pipeline.yml: run {run.pk} started in DEV: {live_server.url}{run.get_absolute_url()}"
            in [line.rstrip() for line in pushed.stderr.splitlines()]), pushed.stderr
    assert "remote: dice: .dice/pipelines/other.yml: on.push does not match main" in pushed.stderr
    assert run.trigger == "push" and run.created_by == tenant_a.owner
    assert run.trigger_payload["commit"] == sha and run.trigger_payload["hosted"] is True
    assert run.trigger_payload["repo"].endswith(f"/git/{tenant_a.org.slug}/{tenant_a.project.slug}/{tenant_a.app.slug}.git")

    guest = tenant_a.add_user("gina", Role.GUEST)
    _, guest_token = services.create_token(guest, name="git")
    clone = tmp_path / "clone"
    git("clone", "-q", _url(live_server, tenant_a, token=guest_token), str(clone))
    assert (clone / "pipeline.yml").read_text() == ECHO
    (clone / "x").write_text("x")
    git("add", "x", cwd=clone)
    git("commit", "-qm", "x", cwd=clone)
    refused = git("push", "origin", "main", cwd=clone, check=False)
    assert refused.returncode != 0 and "may not push" in refused.stderr
    assert PipelineRun.objects.count() == 1


def test_only_the_smart_protocol_paths_are_served(hosted, live_server, tenant_a, tmp_path):
    from django.test import Client

    work = _work(tmp_path, {"README": "x"})
    git("push", "-q", _url(live_server, tenant_a, token=tenant_a.token), "main", cwd=work)
    auth = "Basic " + base64.b64encode(f"x:{tenant_a.token}".encode()).decode()
    base = f"/git/{tenant_a.org.slug}/{tenant_a.project.slug}/{tenant_a.app.slug}.git"
    client = Client()
    for path in ("/HEAD", "/config", "/objects/info/packs", "/../../etc/passwd", "/info/refs%2F..%2F..%2Fconfig"):
        assert client.get(base + path, HTTP_AUTHORIZATION=auth).status_code == 404, path
    assert client.get(base + "/info/refs?service=git-upload-pack", HTTP_AUTHORIZATION=auth).status_code == 200
    assert client.get(base + "/info/refs?service=git-upload-pack").status_code == 401


@pytest.mark.needs_binary("redis-server", "redis-server")
def test_a_plain_git_push_of_the_guestbook_deploys_it_and_the_front_answers(hosted, live_server, engine, tenant_a,
                                                                           tmp_path, settings):
    import time

    from apps.deploy.models import Runtime
    from apps.pipelines.models import PipelineRun

    settings.DICE_DEPLOY_FILES = str(tmp_path / "files")
    files = {p.name: p.read_text() for p in GUESTBOOK.iterdir() if p.is_file()}
    work = _work(tmp_path, files)
    started = time.monotonic()
    git("push", "-q", _url(live_server, tenant_a, token=tenant_a.token), "main", cwd=work)
    run = engine.wait(PipelineRun.objects.get(), timeout=240)
    tasks = engine.tasks(run)
    assert run.status == "success", (run.reason, {a: (t.status, t.reason) for a, t in tasks.items()})
    assert tasks["checkout"].outputs["commit"] == git("rev-parse", "HEAD", cwd=work).stdout.strip()
    runtime = Runtime.objects.get(pk=int(tasks["deploy"].outputs["runtime_id"]))
    from apps.deploy.live import live_status

    front = next(s for s in live_status(runtime)["services"] if s["name"] == "front")
    with urllib.request.urlopen(front["url"].rstrip("/") + "/", timeout=10) as answer:
        assert answer.status == 200
    print(f"\npush to answering front: {time.monotonic() - started:.1f}s")


def test_hosted_repositories_are_in_the_backup(hosted, live_server, tenant_a, tmp_path):
    from dice_console import backup

    work = _work(tmp_path, {"README": "x"})
    git("push", "-q", _url(live_server, tenant_a, token=tenant_a.token), "main", cwd=work)
    target = tmp_path / "backup"
    backup.backup(target, say=lambda _: None)
    copy = target / "files" / "repositories" / f"{tenant_a.app.pk}.git"
    assert (copy / "HEAD").is_file()
    assert git("--git-dir", str(copy), "log", "--format=%s", "main").stdout.strip() == "first"


def test_the_application_page_and_the_api_show_clone_url_branches_and_commits(hosted, live_server, tenant_a,
                                                                               tenant_b, tmp_path):
    work = _work(tmp_path, {"README": "x"})
    git("push", "-q", _url(live_server, tenant_a, token=tenant_a.token), "main", cwd=work)
    answer = tenant_a.api().get(f"/api/applications/{tenant_a.app.pk}/repository/")
    assert answer.status_code == 200
    data = answer.json()
    assert data["exists"] and data["clone_url"].endswith("/git/a-org/a-proj/a-app.git")
    assert [b["name"] for b in data["branches"]] == ["main"] and data["commits"][0]["subject"] == "first"
    assert tenant_b.api().get(f"/api/applications/{tenant_a.app.pk}/repository/").status_code == 404
    page = tenant_a.browser_client().get(tenant_a.app.get_absolute_url()).content.decode()
    assert "/git/a-org/a-proj/a-app.git" in page and "data-copy" in page and "first" in page


def test_dice_repo_show_and_url(hosted, live_server, tenant_a, tmp_path, dice_cli):
    import json

    cli = dice_cli(tenant_a.owner)
    code, out, err = cli("repo", "show", "a-org/a-proj/a-app")
    assert code == 0, err
    assert "no repository yet" in out
    code, url, _ = cli("repo", "url", "a-org/a-proj/a-app")
    assert code == 0 and url.strip().endswith("/git/a-org/a-proj/a-app.git")
    work = _work(tmp_path, {"README": "x"})
    git("push", "-q", _url(live_server, tenant_a, token=tenant_a.token), "main", cwd=work)
    code, out, err = cli("repo", "show", "a-org/a-proj/a-app")
    assert code == 0 and "main" in out and "first" in out, err
    code, out, _ = cli("repo", "show", "a-org/a-proj/a-app", "--format", "json")
    assert json.loads(out)["branches"][0]["name"] == "main"


@pytest.mark.needs_binary("redis-server", "redis-server")
def test_a_push_builds_the_guestbook_image_releases_it_and_the_front_answers(hosted, live_server, engine, tenant_a,
                                                                             tmp_path, settings, registry_url):
    import json
    import time

    from apps.deploy.live import live_status
    from apps.deploy.models import Release, Runtime
    from apps.pipelines.images import oci
    from apps.pipelines.images.registry import Registry
    from apps.pipelines.models import PipelineRun

    settings.DICE_DEPLOY_FILES = str(tmp_path / "files")
    settings.DICE_IMAGE_REGISTRY = registry_url
    registry = Registry(registry_url)
    base = {"bin/python3": b"#!/bin/sh\n"}  # the base the Dockerfile names, as an image of the registry
    oci.build('FROM scratch\nCOPY bin/ /usr/bin/\nENV PATH=/usr/bin\n', list(base), lambda r: (base[r], 0o755),
              registry, "library/python", "3.11-slim")
    files = {p.name: p.read_text() for p in GUESTBOOK.iterdir() if p.is_file() and p.name != "pipeline.yml"}
    files[".dice/pipelines/image.yml"] = files.pop("image-pipeline.yml")
    work = _work(tmp_path, files)
    started = time.monotonic()
    git("push", "-q", _url(live_server, tenant_a, token=tenant_a.token), "main", cwd=work)
    run = engine.wait(PipelineRun.objects.get(), timeout=240)
    tasks = engine.tasks(run)
    assert run.status == "success", (run.reason, {a: (t.status, t.reason) for a, t in tasks.items()})
    image = tasks["image"].outputs["image"]
    assert image == f"{registry.host}/a-org/a-proj/a-app:run-{run.pk}"
    release = Release.objects.get(pk=int(tasks["release"].outputs["release_id"]))
    assert release.images["front"] == image and release.images["api"] == image
    manifest, digest = registry.manifest("a-org/a-proj/a-app", f"run-{run.pk}")
    assert digest == tasks["image"].outputs["digest"] and len(manifest["layers"]) == 2
    config = json.loads(registry.blob("a-org/a-proj/a-app", manifest["config"]["digest"]))["config"]
    assert config["Cmd"] == ["python3", "front.py"] and config["WorkingDir"] == "/app"
    runtime = Runtime.objects.get(pk=int(tasks["deploy"].outputs["runtime_id"]))
    front = next(s for s in live_status(runtime)["services"] if s["name"] == "front")
    with urllib.request.urlopen(front["url"].rstrip("/") + "/", timeout=10) as answer:
        assert answer.status == 200
    print(f"\npush to answering front, with the image build: {time.monotonic() - started:.1f}s; "
          f"image build: {(tasks['image'].finished - tasks['image'].started).total_seconds():.2f}s")


def test_deleting_an_application_or_its_project_removes_its_repository(hosted, live_server, tenant_a, tmp_path):
    from apps.pipelines import repos
    from apps.projects import services
    from apps.projects.models import Application
    from dice_console import backup

    work = _work(tmp_path, {"README": "x"})
    git("push", "-q", _url(live_server, tenant_a, token=tenant_a.token), "main", cwd=work)
    first = tenant_a.app.pk
    assert repos.exists(first)
    services.delete_application(tenant_a.owner, tenant_a.app)
    assert not repos.repo_path(first).exists()
    target = tmp_path / "backup"
    backup.backup(target, say=lambda _: None)
    assert not (target / "files" / "repositories" / f"{first}.git").exists()

    # With its project: the cascade removes every application's repository.
    other = Application.objects.create(project=tenant_a.project, name="other", slug="other")
    other_url = _url(live_server, tenant_a, token=tenant_a.token).replace("/a-app.git", "/other.git")
    git("push", "-q", other_url, "main", cwd=work)
    assert repos.exists(other.pk)
    services.delete_project(tenant_a.owner, tenant_a.project)
    assert not repos.repo_path(other.pk).exists()


def test_a_folder_left_at_a_new_applications_id_is_not_its_history(hosted, tenant_a):
    from apps.pipelines import repos
    from apps.projects.models import Application

    nxt = Application.objects.order_by("-pk").first().pk + 1
    left = repos.ensure(nxt)  # e.g. SQLite reusing the largest id after a crash
    assert left.exists()
    Application.objects.create(pk=nxt, project=tenant_a.project, name="new", slug="new")
    assert not left.exists()
