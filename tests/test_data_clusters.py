"""Spark clusters registered by their master's REST URL, and workspaces binding data clusters
(API, page, CLI): only clusters of a data engine the organization may use, one per engine, and
nothing changes on bad input. Needs no Spark: the master named here does not answer."""

from __future__ import annotations

import pytest

from apps.clusters.models import Cluster

pytestmark = pytest.mark.django_db

DEAD_MASTER = "http://127.0.0.1:9/?master=spark://127.0.0.1:9&ui=http://127.0.0.1:9"


def _register(tenant, name, **body):
    return tenant.api().post("/api/clusters/", {"name": name, "kind": "spark", **body}, format="json")


def test_spark_cluster_is_registered_by_its_endpoint_and_checked(tenant_a):
    r = _register(tenant_a, "spark-a", endpoint=DEAD_MASTER)
    assert r.status_code == 201, r.content
    data = r.json()
    assert data["kind"] == "spark" and data["api_server"] == DEAD_MASTER
    assert data["check_status"] == "error" and "cannot be reached" in data["check_report"]["error"]
    assert data["check_report"]["features"]["data_engine"] == "spark"


@pytest.mark.parametrize("endpoint", ["", "spark://host:7077", "http://", "http://h:6066/x y"])
def test_a_bad_endpoint_is_refused_naming_the_field(tenant_a, endpoint):
    r = _register(tenant_a, "spark-bad", endpoint=endpoint)
    assert r.status_code == 400 and "endpoint" in r.json(), r.content
    assert not Cluster.objects.filter(name="spark-bad").exists()


def test_unknown_kind_and_reserved_name_are_refused(tenant_a):
    r = _register(tenant_a, "x1", kind="yarn", endpoint="http://h:6066")
    assert r.status_code == 400 and "kind" in r.json()
    r = _register(tenant_a, "spark-local", endpoint="http://h:6066")
    assert r.status_code == 400 and "reserved" in str(r.json())


def _workspace(tenant, kind="DEV"):
    return tenant.project.workspaces.get(kind=kind)


def test_workspace_binds_one_data_cluster_per_engine(tenant_a, tenant_b):
    assert _register(tenant_a, "spark-a", endpoint=DEAD_MASTER).status_code == 201
    assert _register(tenant_a, "spark-a2", endpoint=DEAD_MASTER).status_code == 201
    assert _register(tenant_b, "spark-b", endpoint=DEAD_MASTER).status_code == 201
    ws = _workspace(tenant_a)
    url = f"/api/workspaces/{ws.pk}/"
    api = tenant_a.api()
    r = api.patch(url, {"data_clusters": ["spark-a"]}, format="json")
    assert r.status_code == 200 and r.json()["data_clusters"] == ["spark-a"], r.content
    for bad, why in ((["local"], "not a data engine"), (["spark-a", "spark-a2"], "one data cluster per engine"),
                     (["spark-b"], "spark-b")):
        r = api.patch(url, {"data_clusters": bad}, format="json")
        assert r.status_code == 400 and why in str(r.json()), (bad, r.content)
    assert list(ws.data_clusters.values_list("name", flat=True)) == ["spark-a"]  # unchanged
    assert api.patch(url, {"data_clusters": []}, format="json").json()["data_clusters"] == []


def test_workspace_page_binds_a_data_cluster(tenant_a):
    assert _register(tenant_a, "spark-a", endpoint=DEAD_MASTER).status_code == 201
    ws = _workspace(tenant_a)
    client = tenant_a.browser_client()
    url = f"/orgs/{tenant_a.org.slug}/{tenant_a.project.slug}/workspaces/dev/"
    page = client.get(url)
    assert page.status_code == 200 and 'name="data_clusters"' in page.content.decode()
    assert "spark-a" in page.content.decode() and '<option value="local"' not in page.content.decode().split(
        'name="data_clusters"')[1].split("</select>")[0]
    r = client.post(url, {"cluster": "local", "cpu_quota": ws.cpu_quota, "mem_quota": ws.mem_quota,
                          "data_clusters": ["spark-a"]})
    assert r.status_code == 302, r.content.decode()[:2000]
    assert list(ws.data_clusters.values_list("name", flat=True)) == ["spark-a"]


def test_managed_spark_local_is_made_when_the_engine_is_installed(monkeypatch):
    from apps.clusters import services
    from scheduler import engines

    monkeypatch.setattr(engines, "engine_venv", lambda name: None)
    assert services.ensure_managed_data_clusters() == []
    monkeypatch.setattr(engines, "engine_venv", lambda name: f"/x/{name}")
    made = {c.name: c for c in services.ensure_managed_data_clusters()}
    assert sorted(made) == ["flink-local", "spark-local"] and all(c.all_organizations for c in made.values())
    assert {c.kind for c in made.values()} == {"flink", "spark"}
    ref = services.cluster_ref(made["spark-local"])
    assert ref.config["managed"] and ref.config["worker_cores"] == 2 and ref.config["worker_memory_mib"] == 768


def test_register_page_takes_a_spark_master(tenant_a):
    from django.urls import reverse

    client = tenant_a.browser_client()
    page = client.get(reverse("clusters:cluster_add"))
    assert page.status_code == 200 and 'name="endpoint"' in page.content.decode()
    ratios = {f"{ws}_{r}_ratio": "1" for ws in ("DEV", "TEST", "STAGING", "PROD") for r in ("cpu", "mem")}
    r = client.post(reverse("clusters:cluster_add"), {"name": "spark-page", "kind": "spark", "endpoint": "nonsense",
                                                      **ratios})
    assert r.status_code == 200 and "is registered by its master&#x27;s REST URL" in r.content.decode()
    assert not Cluster.objects.filter(name="spark-page").exists()
    r = client.post(reverse("clusters:cluster_add"), {"name": "spark-page", "kind": "spark", "endpoint": DEAD_MASTER,
                                                      **ratios})
    assert r.status_code == 302, r.content.decode()[:3000]
    cluster = Cluster.objects.get(name="spark-page")
    assert cluster.kind == "spark"
    page = client.get(cluster.get_absolute_url())  # the cluster page of an unreachable master
    assert page.status_code == 200 and "cannot be reached" in page.content.decode()


def test_new_projects_on_local_get_the_managed_spark_cluster(monkeypatch, django_user_model):
    from apps.clusters import services as cluster_services
    from apps.projects import services
    from scheduler import engines
    from tests.conftest import make_org

    monkeypatch.setattr(engines, "engine_venv", lambda name: f"/x/{name}")
    cluster_services.ensure_managed_data_clusters()
    owner = django_user_model.objects.create_user("spark-owner", password="pw")
    project = services.create_project(owner, make_org(owner, "spark-org"), slug="etl")
    for ws in project.workspaces.all():
        assert ws.cluster.name == "local"
        assert [c.name for c in ws.data_clusters.all()] == ["flink-local", "spark-local"]  # one per engine


def test_cli_registers_a_spark_master_and_binds_it(transactional_db, dice_cli):
    import json

    from django.contrib.auth import get_user_model

    from apps.projects import services
    from tests.conftest import make_org

    Cluster.local()
    owner = get_user_model().objects.create_user("cli-owner")
    org = make_org(owner, "cli-org")
    services.create_project(owner, org, slug="etl")
    cli = dice_cli(owner)
    code, out, err = cli("cluster", "register", "spark-cli", "--endpoint", DEAD_MASTER, "--format", "json")
    assert code == 0, err
    assert json.loads(out)["kind"] == "spark"
    code, out, err = cli("workspace", "set", "cli-org/etl", "dev", "--data-cluster", "spark-cli", "--format", "json")
    assert code == 0 and json.loads(out)["data_clusters"] == ["spark-cli"], err
    code, out, err = cli("workspace", "set", "cli-org/etl", "dev", "--data-cluster", "local")
    assert code != 0 and "not a data engine" in err
    code, out, err = cli("workspace", "list", "cli-org/etl")
    assert code == 0 and "spark-cli" in out
    code, out, err = cli("workspace", "set", "cli-org/etl", "DEV", "--no-data-clusters", "--format", "json")
    assert code == 0 and json.loads(out)["data_clusters"] == []
