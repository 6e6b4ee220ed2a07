"""A cluster row of kind `flink` as the scheduler sees it: its REST URL, or the managed local
session when it has none; a registered cluster that does not answer is reported unreachable."""

from __future__ import annotations

import pytest

from apps.clusters import services
from apps.clusters.models import Cluster
from scheduler.flink import FlinkInspector

pytestmark = pytest.mark.django_db


def test_a_flink_cluster_is_reached_at_its_rest_url_or_is_the_managed_one():
    remote = Cluster.objects.create(name="flink-prod", kind="flink", api_server="http://127.0.0.1:1")
    ref = services.cluster_ref(remote)
    assert ref.config["rest_url"] == "http://127.0.0.1:1" and "managed" not in ref.config
    assert services.capabilities(remote).savepoints and not services.capabilities(remote).steps
    managed = Cluster.objects.create(name="flink-local", kind="flink")
    assert services.cluster_ref(managed).config.get("managed") is True
    assert "rest_url" not in services.cluster_ref(Cluster.local()).config


def test_an_unreachable_flink_cluster_checks_as_unreachable():
    remote = Cluster.objects.create(name="flink-gone", kind="flink", api_server="http://127.0.0.1:1")
    inspector = services.cluster_inspector(remote)
    assert isinstance(inspector, FlinkInspector)
    report = inspector.check()
    assert report["reachable"] is False and "cannot be reached" in report["error"]
    assert report["features"]["savepoints"] is True


def test_registering_a_flink_cluster_through_the_api(tenant_a):
    client = tenant_a.api()
    answer = client.post("/api/clusters/", {"name": "flink-a", "kind": "flink", "server": "http://127.0.0.1:1"},
                         format="json")
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert body["kind"] == "flink" and body["api_server"] == "http://127.0.0.1:1"
    assert body["check_status"] == "error" and "cannot be reached" in body["check_report"]["error"]
    cluster = Cluster.objects.get(name="flink-a")
    assert cluster.organization == tenant_a.org and services.cluster_ref(cluster).config["rest_url"]


@pytest.mark.parametrize("body, field, error", [
    ({"kind": "flink", "server": "ftp://x"}, "server", "http(s)://host:port"),
    ({"kind": "flink", "server": "http://h:1/api"}, "server", "http(s)://host:port"),
    ({"kind": "flink", "server": "http://h:1", "token": "t"}, "kubeconfig", "takes no credentials"),
    ({"kind": "local"}, "kind", "register kubernetes or an engine cluster"),
])
def test_bad_flink_registrations_name_the_field_and_create_nothing(tenant_a, body, field, error):
    answer = tenant_a.api().post("/api/clusters/", {"name": "flink-bad", **body}, format="json")
    assert answer.status_code == 400, answer.content
    assert error in str(answer.json().get(field, answer.json()))
    assert not Cluster.objects.filter(name="flink-bad").exists()


def test_only_staff_register_the_managed_local_flink_cluster(tenant_a):
    answer = tenant_a.api().post("/api/clusters/", {"name": "flink-managed", "kind": "flink"}, format="json")
    assert answer.status_code == 403 and "only staff" in str(answer.json())
    assert not Cluster.objects.filter(name="flink-managed").exists()
