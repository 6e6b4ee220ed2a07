"""The CMDB fed by deploys (apps.deploy.cmdb_feed) and by the cluster sync: a finished deployment
records the runtime, its services, addon instances and release with their relations and the
right organization; a later deploy and a sync of the same runtime read as one change history."""

from __future__ import annotations

import pytest

from apps.clusters.models import Cluster
from apps.clusters.sync import _record_cmdb, sync_cluster
from apps.cmdb import services as cmdb
from apps.cmdb.models import Change, ConfigurationItem
from apps.deploy import cmdb_feed, deployments
from apps.deploy.refs import runtime_ref
from apps.deploy.tasks import run_deployment
from scheduler.base import Health
from tests import test_deployments_support as support
from tests.test_deployments_support import bind_to, release_of

fake, fake_cluster, fast_rollouts = support.fake, support.fake_cluster, support.fast_rollouts

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast(fast_rollouts):
    return fast_rollouts


def _deploy(tenant, release, name="main"):
    d = deployments.deploy(tenant.owner, tenant.app, "DEV", release=release, runtime_name=name)
    run_deployment(d.pk)
    d.refresh_from_db()
    return d


def _item(kind, key) -> ConfigurationItem:
    return ConfigurationItem.objects.get(kind=kind, key=key)


def _out(item) -> set[tuple[str, str]]:
    return {(r.kind, r.target.key) for r in item.relations_out.select_related("target")}


def _history(item) -> list[tuple[str, str]]:
    return list(Change.objects.filter(item=item).order_by("id").values_list("source", "action"))


def test_a_healthy_deploy_records_runtime_services_addons_and_release(tenant_a, fake_cluster, fake):
    bind_to(tenant_a, fake_cluster)
    v1 = release_of(tenant_a)
    d = _deploy(tenant_a, v1)
    assert d.status == "healthy"
    ref = runtime_ref(d.runtime)
    rt_key = cmdb.runtime_key(ref.org, ref.project, ref.app, ref.workspace, ref.name)

    runtime = _item("runtime", rt_key)
    assert runtime.organization == tenant_a.org and runtime.cluster == fake_cluster
    attrs = runtime.attributes
    assert attrs["release"] == "v1" and attrs["deployment"] == d.pk and attrs["deployment_status"] == "healthy"
    assert attrs["services"] == {"web": 2, "worker": 1} and attrs["addons"] == ["cache"]
    assert attrs["namespace"] == ref.namespace

    release = _item("release", cmdb_feed.release_key(v1))
    assert release.organization == tenant_a.org and release.attributes["version"] == 1
    web, worker = _item("service", f"{rt_key}/web"), _item("service", f"{rt_key}/worker")
    cache = _item("addon", f"{rt_key}/cache")
    assert web.attributes["image"] == "registry.example/web:1" and web.attributes["replicas"] == 2
    assert {i.organization for i in (web, worker, cache)} == {tenant_a.org}

    assert _out(runtime) == {("depends-on", release.key), ("uses-addon", cache.key)}
    assert _out(web) == {("belongs-to", rt_key), ("depends-on", worker.key)}
    assert _out(worker) == {("belongs-to", rt_key)}
    assert _out(cache) == {("belongs-to", rt_key)}

    # recording the same deployment again changes nothing
    before = Change.objects.count()
    cmdb_feed.record_deployment(d.pk)
    assert Change.objects.count() == before
    # another organization sees none of it
    from apps.cmdb.models import ConfigurationItem as CI

    assert not CI.objects.filter(organization__slug="b-org").exists()


def test_a_failed_deploy_is_recorded_too(tenant_a, fake_cluster, fake):
    bind_to(tenant_a, fake_cluster)
    fake.health, fake.reason = Health.DEGRADED, "CrashLoopBackOff"
    d = _deploy(tenant_a, release_of(tenant_a), name="broken")
    assert d.status == "failed"
    ref = runtime_ref(d.runtime)
    runtime = _item("runtime", cmdb.runtime_key(ref.org, ref.project, ref.app, ref.workspace, ref.name))
    assert runtime.attributes["deployment_status"] == "failed" and runtime.attributes["release"] == "v1"


def test_deploy_then_sync_read_as_one_history(tenant_a, fake_cluster, fake):
    bind_to(tenant_a, fake_cluster)
    d1 = _deploy(tenant_a, release_of(tenant_a))
    ref = runtime_ref(d1.runtime)
    rt_key = cmdb.runtime_key(ref.org, ref.project, ref.app, ref.workspace, ref.name)
    d2 = _deploy(tenant_a, release_of(tenant_a, images={"web": "registry.example/web:2"}))
    assert d2.status == "healthy"
    runtime = _item("runtime", rt_key)
    web = _item("service", f"{rt_key}/web")
    assert web.attributes["image"] == "registry.example/web:2"
    update = Change.objects.filter(item=runtime, action="updated").get()
    assert update.source == f"deploy:{d2.pk}"
    assert update.diff["release"] == {"old": "v1", "new": "v2"}
    assert Change.objects.filter(item=web, action="updated").get().diff["image"]["new"] == "registry.example/web:2"

    # the cluster sync reports the same runtime from the labels of its workloads
    labels = {"dice.io/org": ref.org, "dice.io/project": ref.project, "dice.io/app": ref.app,
              "dice.io/workspace": ref.workspace.lower(), "dice.io/runtime": ref.name}
    node = {"name": "n1", "capacity": {}, "allocatable": {}, "labels": {}, "ready": True, "unschedulable": False,
            "internal_ip": "10.0.0.1", "kubelet_version": "v1"}
    snap = {
        "nodes": [node],
        "namespaces": [{"name": ref.namespace, "labels": labels, "dice": labels, "phase": "Active"}],
        "workloads": [
            {"kind": "Deployment", "name": "web", "namespace": ref.namespace, "replicas": 3,
             "images": ["registry.example/web:2"], "labels": {**labels, "dice.io/service": "web"}},
            {"kind": "Deployment", "name": "worker", "namespace": ref.namespace, "replicas": 1,
             "images": ["registry.example/worker:1"], "labels": {**labels, "dice.io/service": "worker"}},
            {"kind": "StatefulSet", "name": "cache", "namespace": ref.namespace, "replicas": 1,
             "images": ["redis:7"], "labels": {**labels, "dice.io/addon": "cache"}},
        ],
        "pods": [{"labels": {**labels, "dice.io/service": "web"}, "namespace": ref.namespace, "node": "n1"}],
    }
    _record_cmdb(fake_cluster, snap, f"sync:{fake_cluster.name}")
    runtime.refresh_from_db()
    # the deploy's facts stay, the sync's are added (someone scaled web to 3 on the cluster)
    assert runtime.attributes["release"] == "v2" and runtime.attributes["deployment"] == d2.pk
    assert runtime.attributes["services"] == {"web": 3, "worker": 1}
    assert _history(runtime) == [(f"deploy:{d1.pk}", "created"), (f"deploy:{d2.pk}", "updated"),
                                 (f"sync:{fake_cluster.name}", "updated")]
    assert Change.objects.filter(item=runtime).order_by("id").last().diff == {"services.web": {"old": 2, "new": 3}}
    release = cmdb_feed.release_key(d2.release)
    cache_key = f"{rt_key}/cache"
    assert _out(runtime) == {("depends-on", release), ("uses-addon", cache_key),
                             ("runs-on", "fake/n1"), ("belongs-to", f"fake/{ref.namespace}")}
    web = _item("service", f"{rt_key}/web")
    assert _out(web) == {("belongs-to", rt_key), ("depends-on", f"{rt_key}/worker"), ("runs-on", "fake/n1")}
    assert web.attributes["image"] == "registry.example/web:2" and web.attributes["workload"] == "Deployment/web"
    assert ("belongs-to", rt_key) in _out(_item("addon", cache_key))

    # a second sync with nothing new writes nothing; a redeploy keeps the sync's facts
    count = Change.objects.count()
    _record_cmdb(fake_cluster, snap, f"sync:{fake_cluster.name}")
    assert Change.objects.count() == count
    cmdb_feed.record_deployment(d2.pk)
    runtime.refresh_from_db()
    assert runtime.attributes["namespace"] == ref.namespace
    assert ("runs-on", "fake/n1") in _out(runtime)


def test_the_local_sync_keeps_runtimes_it_cannot_see(tenant_a):
    local = Cluster.local()
    item = cmdb.record_item("runtime", "a-org/a-proj/a-app/dev/main", {"release": "v1"}, "deploy:1",
                            cluster=local, organization=tenant_a.org)
    sync_cluster(local)
    item.refresh_from_db()
    assert item.present and item.attributes == {"release": "v1"}
