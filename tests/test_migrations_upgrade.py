"""An upgrade as an operator makes it: a database at the oldest migration state we keep (every
app of ours at its 0001, the apps that came later at zero), with data in it, migrated to the latest
state; the data is all there afterwards, read through today's models (log lines included: they
moved from one row per line to chunks on the way)."""

from __future__ import annotations

import datetime as dt

import pytest

# Our apps at their first migration; logs and cmdb came later (logs.0001 takes pipelines' lines).
OLDEST = [
    ("clusters", "0001_initial"),
    ("projects", "0001_initial"),
    ("deploy", "0001_initial"),
    ("pipelines", "0001_initial"),
    ("logs", None),
    ("cmdb", None),
]
LINES = 2600  # more than two chunks' worth (1,000 lines each)


@pytest.fixture
def executor(transactional_db):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    yield lambda: MigrationExecutor(connection)
    # Leave the database at the latest state whatever happened (the next tests need it).
    latest = MigrationExecutor(connection)
    latest.migrate(latest.loader.graph.leaf_nodes())


def test_oldest_state_with_data_migrates_to_the_latest(executor):
    from django.contrib.auth import get_user_model

    old = executor()
    old.migrate(OLDEST)
    state = executor().loader.project_state([node for node in OLDEST if node[1]], at_end=True)
    applied = executor().loader.applied_migrations
    assert ("clusters", "0002_local_cluster") not in applied and ("logs", "0001_initial") not in applied
    models = state.apps

    Cluster = models.get_model("clusters", "Cluster")
    Organization = models.get_model("projects", "Organization")
    Project = models.get_model("projects", "Project")
    Application = models.get_model("projects", "Application")
    Workspace = models.get_model("projects", "Workspace")
    Release = models.get_model("deploy", "Release")
    PipelineRun = models.get_model("pipelines", "PipelineRun")
    TaskRun = models.get_model("pipelines", "TaskRun")
    TaskLog = models.get_model("pipelines", "TaskLog")
    ProjectConfig = models.get_model("pipelines", "ProjectConfig")
    User = models.get_model("auth", "User")

    User.objects.create(username="early-adopter")
    cluster = Cluster.objects.create(name="prod", kind="kubernetes", api_server="https://k8s.example:6443")
    org = Organization.objects.create(slug="acme", name="Acme")
    project = Project.objects.create(organization=org, slug="shop", name="Shop")
    Workspace.objects.create(project=project, kind="PROD", cluster=cluster)
    app = Application.objects.create(project=project, slug="web", name="Web")
    Release.objects.create(application=app, version=1, spec_text="version: '2.0'\n", spec_hash="a" * 64,
                           content_hash="b" * 64)
    ProjectConfig.objects.create(project=project, key="REGION", value="eu-1")
    run = PipelineRun.objects.create(application=app, source="version: '1.1'\n")
    task = TaskRun.objects.create(run=run, alias="build", type="custom-script")
    start = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    TaskLog.objects.bulk_create([
        TaskLog(task_run=task, number=n, timestamp=start + dt.timedelta(seconds=n),
                stream="stderr" if n % 100 == 0 else "stdout", text=f"line {n}")
        for n in range(1, LINES + 1)
    ])

    latest = executor()
    latest.migrate(latest.loader.graph.leaf_nodes())
    assert executor().migration_plan(executor().loader.graph.leaf_nodes()) == []

    from apps.clusters.models import Cluster as NowCluster
    from apps.deploy.models import Release as NowRelease
    from apps.logs import store
    from apps.logs.models import LogChunk
    from apps.pipelines.models import ProjectConfig as NowConfig
    from apps.pipelines.models import TaskRun as NowTaskRun
    from apps.projects.models import Application as NowApplication

    assert get_user_model().objects.filter(username="early-adopter").exists()
    now_app = NowApplication.objects.select_related("project__organization").get(slug="web")
    assert (now_app.project.organization.slug, now_app.project.slug) == ("acme", "shop")
    assert now_app.project.workspaces.get(kind="PROD").cluster.name == "prod"
    release = NowRelease.objects.get(application=now_app)
    assert (release.version, release.spec_text) == (1, "version: '2.0'\n")
    # deploy.0005 and pipelines.0006 filled the organization and project the scoped lists filter on.
    from apps.pipelines.models import PipelineRun as NowRun

    for row in (release, NowRun.objects.get(application=now_app)):
        assert (row.scope_organization_id, row.scope_project_id) == (now_app.project.organization_id,
                                                                     now_app.project_id), row
    assert NowConfig.objects.get(key="REGION").plain_value() == "eu-1"
    prod = NowCluster.objects.get(name="prod")
    assert prod.api_server == "https://k8s.example:6443" and prod.credentials == "" and not prod.allow_shared_tenancy
    assert NowCluster.objects.filter(name="local", kind="local").exists()  # made by clusters.0002
    # clusters.0006: a cluster in use is granted to the organizations using it, not owned by one.
    assert list(prod.granted_to.values_list("slug", flat=True)) == ["acme"] and prod.organization_id is None

    now_task = NowTaskRun.objects.get(alias="build")
    assert LogChunk.objects.filter(task_run=now_task).count() == 3
    lines = store.read(now_task.pk)
    assert [ln.number for ln in lines] == list(range(1, LINES + 1))
    assert [ln.text for ln in lines] == [f"line {n}" for n in range(1, LINES + 1)]
    assert [ln.stream for ln in lines if ln.stream == "stderr"] == ["stderr"] * (LINES // 100)
    assert lines[0].timestamp == pytest.approx((start + dt.timedelta(seconds=1)).timestamp())
    assert store.read(now_task.pk, after=1999, limit=2)[0].text == "line 2000"
