"""A cluster row of kind `flink` as the scheduler sees it: its REST URL (registered like any data
engine's cluster, by `endpoint`), or the managed local session (`flink-local`, made by the console)
when it has none; a registered cluster that does not answer is reported unreachable."""

from __future__ import annotations

import pytest

from apps.clusters import services
from apps.clusters.models import Cluster
from scheduler.flink import FlinkInspector

pytestmark = pytest.mark.django_db


def test_a_flink_cluster_is_reached_at_its_rest_url_or_is_the_managed_one():
    remote = Cluster.objects.create(name="flink-prod", kind="flink", api_server="http://127.0.0.1:1")
    ref = services.cluster_ref(remote)
    assert ref.config["endpoint"] == "http://127.0.0.1:1" and "managed" not in ref.config
    caps = services.capabilities(remote)
    # savepoints for its services; steps since the `flink` action runs as a step of the data cluster
    assert caps.savepoints and caps.steps and caps.data_engine == "flink" and not caps.runtimes
    managed = Cluster.objects.create(name="flink-local", kind="flink")
    assert services.cluster_ref(managed).config.get("managed") is True
    assert "endpoint" not in services.cluster_ref(Cluster.local()).config


def test_an_unreachable_flink_cluster_checks_as_unreachable():
    remote = Cluster.objects.create(name="flink-gone", kind="flink", api_server="http://127.0.0.1:1")
    inspector = services.cluster_inspector(remote)
    assert isinstance(inspector, FlinkInspector)
    report = inspector.check()
    assert report["reachable"] is False and "cannot be reached" in report["error"]
    assert report["features"]["savepoints"] is True


def test_registering_a_flink_cluster_through_the_api(tenant_a):
    client = tenant_a.api()
    answer = client.post("/api/clusters/", {"name": "flink-a", "kind": "flink", "endpoint": "http://127.0.0.1:1"},
                         format="json")
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert body["kind"] == "flink" and body["api_server"] == "http://127.0.0.1:1"
    assert body["check_status"] == "error" and "cannot be reached" in body["check_report"]["error"]
    cluster = Cluster.objects.get(name="flink-a")
    assert cluster.organization == tenant_a.org and services.cluster_ref(cluster).config["endpoint"]


@pytest.mark.parametrize("body, field, error", [
    ({"kind": "flink", "endpoint": "ftp://x"}, "endpoint", "registered by its REST URL"),
    ({"kind": "flink", "endpoint": "http://h:1/api"}, "endpoint", "registered by its REST URL"),
    ({"kind": "flink", "endpoint": "http://h:1", "token": "t"}, "kubeconfig", "takes no credentials"),
    ({"kind": "flink", "endpoint": "http://h:1", "server": "http://h:1"}, "kubeconfig", "takes no credentials"),
    ({"kind": "local"}, "kind", "the console has it already"),
])
def test_bad_flink_registrations_name_the_field_and_create_nothing(tenant_a, body, field, error):
    answer = tenant_a.api().post("/api/clusters/", {"name": "flink-bad", **body}, format="json")
    assert answer.status_code == 400, answer.content
    assert error in str(answer.json().get(field, answer.json()))
    assert not Cluster.objects.filter(name="flink-bad").exists()


def test_a_flink_cluster_without_its_rest_url_is_refused(tenant_a):
    """Only the console makes the managed local session cluster (flink-local, where the engine is
    installed): a registration must name a REST URL."""
    answer = tenant_a.api().post("/api/clusters/", {"name": "flink-managed", "kind": "flink"}, format="json")
    assert answer.status_code == 400 and "registered by its REST URL" in str(answer.json().get("endpoint"))
    assert not Cluster.objects.filter(name="flink-managed").exists()
