"""The scoped lists stay bounded as history grows (issue 24 item 5): the number of queries of every
list, API and page, first page and deep, does not change with the number of rows, for a platform
admin and for a member of one organization among several; on PostgreSQL the audit and release
lists' plans read indexes, not the whole table. bench/bench_api_scale.py has the timings."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.test_page_queries import PIPELINE, SPEC


def _seed(owner, app, n: int) -> None:
    """n audit events, releases (each deployed), runs (2 tasks each) and n // 10 runtimes more."""
    from apps.clusters.models import Cluster
    from apps.deploy.models import Deployment, Release, Runtime
    from apps.deploy.services import create_release
    from apps.pipelines.models import PipelineRun, TaskRun
    from apps.projects.models import AuditEvent

    project = app.project
    scope = {"scope_organization_id": project.organization_id, "scope_project_id": project.pk}
    first = Release.objects.filter(application=app).order_by("version").first() or create_release(
        owner, app, spec_text=SPEC)
    top = Release.objects.filter(application=app).order_by("-version").values_list("version", flat=True)[0]
    fields = {f.attname: getattr(first, f.attname) for f in Release._meta.concrete_fields
              if f.attname not in ("id", "version", "created")}
    releases = Release.objects.bulk_create([Release(**{**fields, "version": top + 1 + i}) for i in range(n)])
    workspace = project.workspaces.get(kind="DEV")
    start = Runtime.objects.filter(application=app).count()
    runtimes = Runtime.objects.bulk_create(
        [Runtime(application=app, workspace=workspace, cluster=Cluster.objects.get(name="local"),
                 name=f"rt{start + i}", release=first, **scope) for i in range(max(n // 10, 1))])
    Deployment.objects.bulk_create(
        [Deployment(runtime=runtimes[i % len(runtimes)], release=r, status="superseded", created_by=owner, **scope)
         for i, r in enumerate(releases)])
    runs = PipelineRun.objects.bulk_create(
        [PipelineRun(application=app, source=PIPELINE, status="success", created_by=owner,
                     finished=timezone.now(), **scope) for _ in range(n)])
    TaskRun.objects.bulk_create([TaskRun(run=run, alias=f"t{i}", type="custom-script", status="success", position=i)
                                 for run in runs for i in range(2)])
    AuditEvent.objects.bulk_create(
        [AuditEvent(actor=owner, actor_name=owner.username, organization=project.organization, project=project,
                    application=app, action="update", object_type="release", object_id=str(i),
                    object_repr=f"release {i}", before={"n": i}, after={"n": i + 1}) for i in range(n)])


def _lists(app, rows: int) -> list[str]:
    """Every scoped list the bench reads, at its first page and near its end."""
    o, p, a = app.project.organization.slug, app.project.slug, app.slug
    deep = max(rows - 5, 0)
    urls = []
    for url in ("/api/audit-events/?", f"/api/audit-events/?org={o}&", "/api/releases/?",
                f"/api/releases/?application={app.pk}&", "/api/deployments/?", "/api/runtimes/?",
                "/api/pipeline-runs/?", f"/api/pipeline-runs/?application={app.pk}&", "/api/task-runs/?"):
        urls += [f"{url}limit=5", f"{url}limit=5&offset={deep}"]
    for url in ("/audit/?", f"/orgs/{o}/{p}/{a}/releases/?", "/deployments/?", f"/orgs/{o}/{p}/{a}/runtimes/?",
                "/pipelines/?"):
        urls += [f"{url}page=1", f"{url}page={max(rows // 25, 1)}"]
    return [*urls, f"/orgs/{o}/{p}/{a}/pipelines/"]


def _counts(client, token, urls) -> dict[str, int]:
    out = {}
    for url in urls:
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if url.startswith("/api/") else {}
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url, **headers)
        assert response.status_code == 200, (url, response.status_code, response.content[:300])
        key = url.split("offset=")[0].split("page=")[0]
        out[key] = max(out.get(key, 0), len(queries))
    return out


@pytest.fixture
def world(tenant_a, tenant_b, settings, tmp_path):
    """Two organizations with history; a platform admin; a developer member of tenant a's org only."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from apps.projects import services

    settings.DICE_LOCAL_ROOT = str(tmp_path / "local")
    admin = get_user_model().objects.create_user("scale-admin", password="pw", is_superuser=True, is_staff=True)
    member = tenant_a.add_user("scale-member", "developer")
    clients = {}
    for name, user in (("admin", admin), ("member", member)):
        client = Client()
        client.force_login(user)
        clients[name] = (client, services.create_token(user, name="scale")[1])
    return tenant_a, tenant_b, clients


@pytest.mark.django_db
def test_no_list_queries_more_with_more_rows_or_deeper_pages(world):
    a, b, clients = world
    _seed(a.owner, a.app, 30)
    _seed(b.owner, b.app, 30)
    few = {who: _counts(client, token, _lists(a.app, 30)) for who, (client, token) in clients.items()}
    _seed(a.owner, a.app, 120)
    _seed(b.owner, b.app, 120)
    grown = []
    for who, (client, token) in clients.items():
        many = _counts(client, token, _lists(a.app, 150))  # the deep offsets move with the rows
        grown += [f"{who} {url}: {few[who][url]} queries with 30 rows, {n} with 150"
                  for url, n in many.items() if n > few[who][url]]
    assert not grown, "lists whose query count grows with rows or depth:\n" + "\n".join(grown)


@pytest.mark.django_db
def test_a_member_of_one_organization_lists_only_its_rows(world):
    """The literal-id scope (scope.Reach) keeps the isolation the subqueries had, at every depth."""
    a, b, clients = world
    _seed(a.owner, a.app, 12)
    _seed(b.owner, b.app, 12)
    client, token = clients["member"]
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    expected = {"organization": {a.org.slug, a.org.pk}, "application": {a.app.pk}}
    for url, key in (("/api/audit-events/", "organization"), ("/api/releases/", "application"),
                     ("/api/pipeline-runs/", "application"), ("/api/runtimes/", "application"),
                     ("/api/deployments/", "application")):
        seen = []
        for offset in (0, 5, 10):
            seen += client.get(f"{url}?limit=5&offset={offset}", **headers).json()["results"]
        values = {row[key] for row in seen if row.get("actor_name") != "scale-member"}  # own actions: seen
        assert values and values <= expected[key], (url, values)


def _plan(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.postgres
@pytest.mark.django_db
def test_audit_and_release_lists_read_indexes_on_postgresql(world):
    """EXPLAIN of each query the audit and release lists run, for the member of one organization
    among ten and for a platform admin, at a deep page: no sequential scan of the big table.

    Ten organizations so the member's rows are a tenth of the table, where reading them by index
    is what the planner should choose (for half the table a scan can rightly win); the admin's
    count reads every row by nature, so only its page query is checked."""
    from django.contrib.auth import get_user_model

    from apps.projects import services
    from tests.conftest import make_org

    a, b, clients = world
    _seed(a.owner, a.app, 300)
    for n in range(9):
        owner = get_user_model().objects.create_user(f"scale-o{n}")
        org = make_org(owner, f"scale-o{n}")
        app = services.create_application(owner, services.create_project(owner, org, slug="p"), slug="w")
        _seed(owner, app, 300)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    o, p, s = a.org.slug, a.project.slug, a.app.slug
    checked = 0
    for who, (client, token) in clients.items():
        for url, table in (("/api/audit-events/?limit=25&offset=250", "projects_auditevent"),
                           (f"/api/audit-events/?org={o}&limit=25&offset=250", "projects_auditevent"),
                           ("/audit/?page=10", "projects_auditevent"),
                           (f"/api/releases/?application={a.app.pk}&limit=25&offset=250", "deploy_release"),
                           ("/api/releases/?limit=25&offset=250", "deploy_release"),
                           (f"/orgs/{o}/{p}/{s}/releases/?page=10", "deploy_release")):
            headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if url.startswith("/api/") else {}
            with CaptureQueriesContext(connection) as queries:
                assert client.get(url, **headers).status_code == 200
            for query in queries:
                sql = query["sql"]
                if f'FROM "{table}"' not in sql:
                    continue
                if who == "admin" and sql.startswith("SELECT COUNT(*)") and " WHERE " not in sql:
                    continue
                plan = _plan(sql)
                assert f"Seq Scan on {table}" not in plan, f"{who} {url}:\n{sql}\n{plan}"
                checked += 1
    assert checked >= 16
