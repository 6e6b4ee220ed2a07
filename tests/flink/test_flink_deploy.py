"""An `engine: flink` service end to end through apps/deploy (the deployment state machine, the
API, the runtime page), on the local cluster with the console's managed flink-local as the
workspace's Flink data cluster: deployed, upgraded to a new release (the count continues from
the savepoint), scaled, rolled back; the deployment reaches healthy each time and the runtime
page shows the job's state.

Rollouts run eagerly (the Celery task runs inside the request that dispatched it, after commit)."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from apps.deploy.bundles import make_archive
from scheduler.flink import FlinkExecutor
from tests.conftest import make_org
from tests.flink.conftest import taskmanager_counts, wait_for

pytestmark = [pytest.mark.flink, pytest.mark.django_db(transaction=True)]

SPEC = """
version: "2.0"
services:
  counter:
    engine: flink
    cmd: flink run -c Count count.jar stream {tag}
    deployments:
      replicas: 1
"""


@pytest.fixture
def console(settings, tmp_path, flink: FlinkExecutor, count_jar: Path):
    """The local root is the one the session's flink-local lives under, so cluster_ref() of the
    `flink-local` row is the fixture's own executor (one session cluster for the whole tier)."""
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from apps.clusters.models import Cluster
    from apps.projects import services
    from dice_console.celery import app as celery_app

    settings.DICE_LOCAL_ROOT = flink.cluster.config["root"]
    settings.DICE_DEPLOY_FILES = tmp_path / "files"
    settings.DICE_DEPLOY_POLL_INTERVAL = 0.1
    settings.DICE_DEPLOY_TIMEOUT = 180
    settings.DICE_DEPLOY_DEGRADED_GRACE = 60
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    user = get_user_model().objects.create_user("erin")
    org = make_org(user, "acme")
    project = services.create_project(user, org, slug="shop")
    app = services.create_application(user, project, slug="stream")
    cluster, _ = Cluster.objects.get_or_create(name="flink-local", defaults={"kind": "flink", "all_organizations": True})
    project.workspaces.get(kind="DEV").data_clusters.set([cluster])
    release = tmp_path / "release"
    release.mkdir()
    shutil.copy(count_jar, release / "count.jar")
    api = APIClient()
    api.force_authenticate(user)
    made: list[int] = []
    try:
        yield {"api": api, "app": app, "user": user, "files": make_archive(release), "runtimes": made}
    finally:
        for runtime in made:
            api.delete(f"/api/runtimes/{runtime}/")
        celery_app.conf.task_always_eager = eager


def deploy(console, tag: str) -> dict:
    answer = console["api"].post("/api/deployments/", {
        "application": console["app"].pk, "workspace": "DEV", "runtime": "main", "spec_text": SPEC.format(tag=tag),
        "files_base64": base64.b64encode(console["files"]).decode()}, format="json")
    assert answer.status_code == 201, answer.content
    made = answer.json()
    if made["runtime"] not in console["runtimes"]:
        console["runtimes"].append(made["runtime"])
    return made


def counter(console, runtime: int) -> dict:
    status = console["api"].get(f"/api/runtimes/{runtime}/").json()["status"]
    return next(s for s in status["services"] if s["name"] == "counter")


def test_a_flink_service_deployed_upgraded_scaled_and_rolled_back(console, flink: FlinkExecutor):
    api = console["api"]
    first = deploy(console, "e2e-1")
    assert first["status"] == "healthy", first
    assert [t["to_status"] for t in first["transitions"]] == ["queued", "deploying", "healthy"]
    runtime = first["runtime"]
    service = counter(console, runtime)
    assert service["health"] == "Healthy" and service["replicas"][0]["state"] == "RUNNING", service
    wait_for(lambda: len(taskmanager_counts(flink, "e2e-1")) >= 5 or None, 90, "the first job's counts")

    # the runtime page shows the job and its state
    page = Client()
    page.force_login(console["user"])
    html = page.get(reverse("deploy:runtime", args=["acme", "shop", "stream", "DEV", "main"])).content.decode()
    assert "counter-1" in html and "RUNNING" in html

    # upgrade: a new release stops the job with a savepoint; the next one counts on from it
    before = max(taskmanager_counts(flink, "e2e-1"))
    second = deploy(console, "e2e-2")
    assert second["status"] == "healthy", second
    assert counter(console, runtime)["replicas"][0]["name"] == "counter-2"
    wait_for(lambda: len(taskmanager_counts(flink, "e2e-2")) >= 3 or None, 90, "the upgraded job's counts")
    # the new job starts from the savepoint's count (the last one printed), not from 1
    assert min(taskmanager_counts(flink, "e2e-2")) >= before > 5, (before, taskmanager_counts(flink, "e2e-2")[:5])

    # scale: the parallelism, through the API, the same way
    before = max(taskmanager_counts(flink, "e2e-2"))
    answer = api.post(f"/api/runtimes/{runtime}/scale/", {"service": "counter", "replicas": 2}, format="json")
    assert answer.status_code == 200, answer.content
    wait_for(lambda: (s := counter(console, runtime))["health"] == "Healthy" and s["desired"] == 2 or None,
             120, "the scaled job to run")
    assert counter(console, runtime)["replicas"][0]["name"] == "counter-3"
    wait_for(lambda: len([c for c in taskmanager_counts(flink, "e2e-2") if c > before]) >= 3 or None, 90,
             "counts after the scale")

    # rollback to the first release: healthy again, still from a savepoint
    before = max(taskmanager_counts(flink, "e2e-2"))
    printed = len(taskmanager_counts(flink, "e2e-1"))
    answer = api.post(f"/api/runtimes/{runtime}/rollback/", {"release": first["release"]}, format="json")
    assert answer.status_code == 201, answer.content
    back = api.get(f"/api/deployments/{answer.json()['id']}/").json()
    assert back["status"] == "healthy" and back["rollback_of"] == second["id"], back
    assert counter(console, runtime)["replicas"][0]["name"] == "counter-4"
    wait_for(lambda: len(taskmanager_counts(flink, "e2e-1")) >= printed + 3 or None, 90, "the rolled-back job's counts")
    assert min(taskmanager_counts(flink, "e2e-1")[printed:]) >= before
    assert api.delete(f"/api/runtimes/{runtime}/").status_code == 204
    console["runtimes"].remove(runtime)
    wait_for(lambda: not [j for j in flink.rest().jobs() if j.get("state") == "RUNNING"
                          and j.get("name", "").startswith("counter-")] or None, 60, "no counter job left running")
