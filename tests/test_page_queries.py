"""Every list and detail page runs a bounded number of SQL queries: the count with many rows equals
the count with few (no query per row: N+1). The world is made of real rows, through the services
where they exist and the ORM where a service would start real work (runs, deployments)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

SPEC = """version: "2.0"
services:
  web:
    image: nginx
    cmd: python3 -m http.server $PORT
    resources: {cpu: 0.1, mem: 64}
    deployments: {replicas: 1}
"""
PIPELINE = """version: "1.1"
stages:
  - stage:
      - custom-script:
          alias: hello
          commands: [echo hi]
"""


def _grow(t, n: int) -> dict:
    """Add n releases, runtimes with deployments, pipeline definitions and runs with tasks, audit
    events, members and CMDB items to tenant t; return the objects the detail pages need."""
    from apps.clusters.models import Cluster
    from apps.cmdb.models import ConfigurationItem
    from apps.deploy import services as deploy_services
    from apps.deploy.choices import DeploymentStatus
    from apps.deploy.models import Deployment, DeploymentTransition, Runtime
    from apps.pipelines import services as pipeline_services
    from apps.pipelines.models import PipelineRun, PipelineRunTransition, TaskRun, TaskRunTransition
    from apps.projects import services as project_services

    start = Runtime.objects.filter(application=t.app).count()
    workspace = t.project.workspaces.get(kind="DEV")
    cluster = Cluster.objects.get(name="local")
    main, _ = Runtime.objects.get_or_create(application=t.app, workspace=workspace, name="main",
                                           defaults={"cluster": cluster})
    big = PipelineRun.objects.filter(application=t.app, name="big").first() or PipelineRun.objects.create(
        application=t.app, name="big", source=PIPELINE, status="running", created_by=t.owner)
    made: dict = {}
    for i in range(start, start + n):
        release = deploy_services.create_release(t.owner, t.app, spec_text=SPEC, description=f"r{i}")
        runtime = Runtime.objects.create(application=t.app, workspace=workspace, name=f"rt{i}",
                                         cluster=cluster, release=release)
        deployment = Deployment.objects.create(runtime=runtime, release=release, status=DeploymentStatus.HEALTHY,
                                               created_by=t.owner, created_by_name=t.owner.username)
        DeploymentTransition.objects.create(deployment=deployment, from_status="queued", to_status="healthy")
        definition = pipeline_services.save_definition(t.owner, t.app, source=PIPELINE, name=f"p{i}", path=f"p{i}.yml")
        run = PipelineRun.objects.create(application=t.app, definition=definition, source=PIPELINE, status="success",
                                         created_by=t.owner, created_by_name=t.owner.username)
        PipelineRunTransition.objects.create(run=run, from_status="queued", to_status="success")
        TaskRun.objects.create(run=run, alias="hello", type="custom-script", status="success")
        project_services.add_member(t.owner, t.project, username=_user(f"{t.org.slug}-m{i}").username, role="guest")
        ConfigurationItem.objects.create(kind="runtime", key=f"{t.org.slug}/rt{i}", name=f"rt{i}",
                                         organization=t.org, attributes={"replicas": 1})
        # the same runtime and run gain history and tasks: their pages must not query per row either
        old = Deployment.objects.create(runtime=main, release=release, status=DeploymentStatus.SUPERSEDED,
                                        created_by=t.owner, rollback_of=deployment)
        DeploymentTransition.objects.create(deployment=old, from_status="queued", to_status="superseded")
        task = TaskRun.objects.create(run=big, alias=f"t{i}", type="custom-script", status="success", position=i)
        TaskRunTransition.objects.create(task_run=task, from_status="queued", to_status="success")
        PipelineRunTransition.objects.create(run=big, from_status="queued", to_status="running")
        made = {"release": release, "runtime": runtime, "main": main, "big": big, "run": run, "item": ConfigurationItem.objects.latest("pk")}
    return made


def _user(username: str):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(username, password="pw")


def _pages(t, made: dict) -> list[str]:
    o, p, a = t.org.slug, t.project.slug, t.app.slug
    app = (o, p, a)
    return [
        reverse("projects:organizations"),
        reverse("projects:projects"),
        reverse("projects:applications"),
        reverse("projects:audit"),
        reverse("projects:tokens"),
        reverse("projects:organization", args=[o]),
        reverse("projects:organization_members", args=[o]),
        reverse("projects:project", args=[o, p]),
        reverse("projects:project_members", args=[o, p]),
        reverse("projects:application", args=app),
        reverse("deploy:releases", args=app),
        reverse("deploy:release", args=[*app, made["release"].version]),
        reverse("deploy:runtimes", args=app),
        reverse("deploy:runtime", args=[*app, made["runtime"].workspace.kind, made["runtime"].name]),
        reverse("pipelines:list", args=app),
        reverse("pipelines:run", args=[*app, made["run"].pk]),
        reverse("pipelines:run", args=[*app, made["big"].pk]),
        reverse("deploy:runtime", args=[*app, "DEV", "main"]),
        reverse("clusters:clusters"),
        reverse("clusters:cluster", args=["local"]),
        reverse("clusters:resources"),
        reverse("cmdb:items"),
        reverse("cmdb:item", args=[made["item"].pk]),
    ]


def _count(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(queries)


@pytest.mark.django_db
def test_pages_do_not_query_per_row(tenant_a, settings, tmp_path):
    settings.DICE_LOCAL_ROOT = str(tmp_path / "local")
    client = tenant_a.browser_client()
    before = _pages(tenant_a, _grow(tenant_a, 2))
    few = [_count(client, url) for url in before]
    after = _pages(tenant_a, _grow(tenant_a, 8))  # detail pages: of the newest objects
    grown = [
        f"{url}: {old} queries with 2 rows of each kind, {new} with 10"
        for url, old, new in zip(after, few, (_count(client, url) for url in after), strict=True)
        if new > old
    ]
    assert not grown, "pages that query per row:\n" + "\n".join(grown)
