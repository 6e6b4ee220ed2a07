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
