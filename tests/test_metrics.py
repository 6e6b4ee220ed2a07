"""Metrics through the console: a runtime deployed on the local cluster is measured by the
collector (through the engine), stored, served as JSON and Prometheus text to those who may view
it; averages, retention; a runtime that turns degraded after a healthy deployment is notified."""

from __future__ import annotations

import datetime
import os

import pytest
from django.utils import timezone

from apps.monitoring import metrics
from apps.monitoring.models import MetricSample, NotificationDelivery
from tests.conftest import Tenant
from tests.local.conftest import wait_for
from tests.test_runtime_local import local_cluster  # noqa: F401 - the fixture: a tmp root, eager rollouts

SPEC = """version: "2.0"
services:
  burn:
    cmd: while :; do :; done
    resources: {cpu: 1, mem: 64}
  idle:
    cmd: exec sleep 1000
    resources: {cpu: 0.1, mem: 32}
"""


def _deploy(tenant: Tenant, text: str, name: str = "main") -> dict:
    type(tenant.app).objects.filter(pk=tenant.app.pk).update(repo_url="")  # the services need no files
    r = tenant.api().post("/api/deployments/", {"application": tenant.app.pk, "workspace": "DEV", "runtime": name,
                                                "spec_text": text}, format="json")
    assert r.status_code == 201, r.content
    return r.json()


@pytest.mark.django_db(transaction=True)
def test_runtime_metrics_collected_and_served(local_cluster, settings):  # noqa: F811
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from apps.deploy.models import Runtime

    a, b = Tenant("a"), Tenant("b")
    deployed = _deploy(a, SPEC)
    assert deployed["status"] == "healthy", (deployed.get("message"), deployed.get("transitions"))
    runtime = Runtime.objects.get(pk=deployed["runtime"])
    done = metrics.collect_runtime(runtime)
    assert done["available"] and done["samples"] == 4, done  # two replicas, two services

    series = a.api().get(f"/api/metrics/runtimes/{runtime.pk}/", {"window": "1h"}).json()
    assert series["available"] is True and series["health"] == "Healthy"
    # a busy loop gets what the shared cores leave it (little under load), sleep nothing; the
    # engine test checks the figures against the kernel's own accounting
    assert series["services"]["burn"][-1]["cpu_millicores"] > series["services"]["idle"][-1]["cpu_millicores"]
    assert series["services"]["idle"][-1]["cpu_millicores"] < 20
    assert {r["replica"] for r in series["replicas"]} == {"burn-0", "idle-0"}
    assert a.api().get(f"/api/metrics/runtimes/{runtime.pk}/", {"window": "1y"}).status_code == 400

    text = a.api().get(f"/metrics/runtimes/{runtime.pk}/")
    assert text.status_code == 200 and text["Content-Type"].startswith("text/plain; version=0.0.4")
    body = text.content.decode()
    assert "# TYPE dice_replica_cpu_millicores gauge" in body
    assert 'service="burn",replica="burn-0"' in body and "dice_service_replicas_ready{" in body
    assert 'runtime="main"' in a.api().get("/metrics/runtimes/").content.decode()

    # another organization, anonymous callers and non-staff see none of it
    assert b.api().get(f"/metrics/runtimes/{runtime.pk}/").status_code == 404
    assert "burn" not in b.api().get("/metrics/runtimes/").content.decode()
    assert b.api().get(f"/api/metrics/runtimes/{runtime.pk}/").status_code == 404
    assert APIClient().get(f"/metrics/runtimes/{runtime.pk}/").status_code in (401, 403)
    assert a.api().get("/metrics").status_code == 403
    staff = get_user_model().objects.create_user("root", is_staff=True)
    client = APIClient()
    client.force_authenticate(staff)
    console = client.get("/metrics").content.decode()
    assert "process_cpu_seconds_total" in console and 'dice_deployments{status="healthy"} 1' in console


@pytest.mark.django_db(transaction=True)
def test_runtime_turning_degraded_is_notified_once(local_cluster, settings):  # noqa: F811
    from apps.deploy.models import Runtime
    from apps.monitoring import services

    settings.DICE_NOTIFY_ALLOW_PRIVATE_HOSTS = True
    a = Tenant("a")
    services.create_channel(a.owner, a.project, name="mail", kind="email", recipients="ops@example.org",
                            events=["runtime.degraded"])
    deployed = _deploy(a, 'version: "2.0"\nservices:\n  flaky:\n    cmd: sleep 2; exit 1\n')
    assert deployed["status"] == "healthy", (deployed.get("message"), deployed.get("transitions"))
    runtime = Runtime.objects.get(pk=deployed["runtime"])
    assert metrics.collect_runtime(runtime)["degraded"] is False
    wait_for(lambda: metrics.collect_runtime(runtime)["degraded"], 40, "the runtime to turn degraded")
    (delivery,) = NotificationDelivery.objects.all()
    assert delivery.event == "runtime.degraded" and "crash looping" in delivery.subject
    assert metrics.collect_runtime(runtime)["degraded"] is False  # once, not at every collection
    assert NotificationDelivery.objects.count() == 1


@pytest.mark.django_db
def test_averages_and_retention(tenant_a, settings):
    from apps.clusters.models import Cluster
    from apps.deploy.models import Runtime

    runtime = Runtime.objects.create(application=tenant_a.app, workspace=tenant_a.project.workspaces.get(kind="DEV"),
                                     name="main", cluster=Cluster.objects.get(name="local"))
    now = timezone.now().replace(second=0, microsecond=0)
    start = now - datetime.timedelta(minutes=30)
    start -= datetime.timedelta(minutes=start.minute % 5)
    MetricSample.objects.bulk_create([MetricSample(
        runtime=runtime, service="web", at=start + datetime.timedelta(seconds=30 * i), cpu_millicores=100.0 * (i % 2),
        memory_bytes=1000 * (i + 1), restarts=i // 10, replicas=2, ready=2) for i in range(40)])  # 20 minutes
    made = metrics.rollup(now)
    assert made == 4 and metrics.rollup(now) == 0  # four finished buckets, never twice
    first = MetricSample.objects.filter(resolution=300).order_by("at").first()
    assert first.at == start and first.cpu_millicores == 50.0 and first.memory_bytes == 5500 and first.restarts == 0
    day = metrics.series(runtime, "1d", now)["web"]
    assert [p["at"] for p in day[:4]] == [start + datetime.timedelta(minutes=5 * i) for i in range(4)]

    settings.DICE_METRICS_RETENTION_DAYS = 7
    settings.DICE_METRICS_RAW_HOURS = 1
    MetricSample.objects.create(runtime=runtime, service="web", resolution=300, at=now - datetime.timedelta(days=8))
    MetricSample.objects.create(runtime=runtime, service="web", at=now - datetime.timedelta(hours=2))
    assert metrics.expire(now) == 2
    assert MetricSample.objects.filter(at__lt=now - datetime.timedelta(hours=1), resolution=0).count() == 0


@pytest.mark.django_db
def test_runtime_page_shows_sparklines(tenant_a, tenant_b, settings, tmp_path):
    from apps.clusters.models import Cluster
    from apps.deploy.models import Runtime

    settings.DICE_LOCAL_ROOT = tmp_path / "local"
    runtime = Runtime.objects.create(application=tenant_a.app, workspace=tenant_a.project.workspaces.get(kind="DEV"),
                                     name="main", cluster=Cluster.objects.get(name="local"))
    client = tenant_a.browser_client()
    empty = client.get(runtime.get_absolute_url()).content.decode()
    assert 'id="runtime-graphs"' in empty and "No measurements yet" in empty
    now = timezone.now()
    MetricSample.objects.bulk_create([MetricSample(
        runtime=runtime, service="web<x>", at=now - datetime.timedelta(seconds=30 * (20 - i)), cpu_millicores=10.0 * i,
        memory_bytes=(1 + i) * 1024 * 1024, restarts=i // 5, replicas=1, ready=1) for i in range(20)])
    page = client.get(runtime.get_absolute_url()).content.decode()
    assert page.count("<polyline") == 3 and "190m now" in page and "20.0 MiB now" in page
    assert "web&lt;x&gt;" in page and "web<x>" not in page  # names are escaped, the SVG is numbers only
    part = client.get(f"/runtimes/{runtime.pk}/graphs/", {"window": "1d"})
    assert part.status_code == 200 and "<strong>last day</strong>" in part.content.decode()
    assert tenant_b.browser_client().get(f"/runtimes/{runtime.pk}/graphs/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_autoscaling_shows_in_events_and_audit(local_cluster, settings):  # noqa: F811
    from apps.deploy.models import Runtime
    from apps.projects.models import AuditEvent

    a = Tenant("a")
    spec = SPEC.replace("    resources: {cpu: 1, mem: 64}\n", "    resources: {cpu: 0.01, mem: 64}\n"
                        "    deployments: {autoscale: {min: 1, max: 2, cpu_percent: 50}}\n")
    deployed = _deploy(a, spec)
    assert deployed["status"] == "healthy", (deployed.get("message"), deployed.get("transitions"))
    runtime = Runtime.objects.get(pk=deployed["runtime"])
    metrics.collect_runtime(runtime)  # a first reading, so the autoscaler's is a rate
    local_cluster.autoscaler.up_cooldown = 0
    made = wait_for(lambda: local_cluster.autoscaler.evaluate(), 20, "the autoscaler to scale the burning service")
    assert [(d.service, d.current, d.desired) for d in made] == [("burn", 1, 2)]
    assert metrics.collect_runtime(runtime)["scaled"] == 1
    assert metrics.collect_runtime(runtime)["scaled"] == 0  # copied once
    (event,) = AuditEvent.objects.filter(action="runtime.autoscale")
    assert event.actor_name == "system" and "burn: 1 -> 2 replicas" in event.after["message"]
    assert event.project_id == a.project.pk
    events = a.api().get(f"/api/runtimes/{runtime.pk}/").json()["events"]  # as the runtime page shows them
    assert any("burn: 1 -> 2 replicas" in e["message"] for e in events), events


@pytest.mark.django_db
def test_cluster_page_shows_node_usage(tenant_a, settings, tmp_path):
    """The local cluster's machine is measured through its inspector (CPU busy, memory in use) and
    drawn on the cluster page; averaged and kept like the runtimes' samples."""
    from apps.clusters.models import Cluster
    from apps.clusters.sync import sync_cluster
    from apps.monitoring.models import NodeSample

    settings.DICE_LOCAL_ROOT = tmp_path / "local"
    local = Cluster.local()
    sync_cluster(local)
    assert metrics.collect_nodes(local) == 1 and metrics.collect_nodes(local) == 1
    (sample, _) = NodeSample.objects.all()
    assert sample.memory_bytes > 10 * 1024 * 1024 and 0 <= sample.cpu_millicores <= 1000 * (os.cpu_count() or 1) + 1
    page = tenant_a.browser_client().get(local.get_absolute_url()).content.decode()
    assert 'id="cluster-usage"' in page and page.count("<polyline") == 2 and "MiB now" in page
    assert metrics.rollup(timezone.now() + datetime.timedelta(minutes=10)) == 1
    day = tenant_a.browser_client().get(f"/clusters/{local.name}/usage/", {"window": "1d"})
    assert day.status_code == 200 and "<strong>last day</strong>" in day.content.decode()


@pytest.mark.django_db
def test_front_proxy_counters_in_prometheus_text(tenant_a):
    from apps.clusters.models import Cluster
    from apps.deploy.models import Runtime

    runtime = Runtime.objects.create(application=tenant_a.app, workspace=tenant_a.project.workspaces.get(kind="DEV"),
                                     name="main", cluster=Cluster.objects.get(name="local"))
    MetricSample.objects.create(runtime=runtime, service="web", at=timezone.now(), cpu_millicores=1.0,
                                memory_bytes=1, replicas=1, ready=1, connections=12, replies=10,
                                first_byte_seconds=0.5)
    body = tenant_a.api().get(f"/metrics/runtimes/{runtime.pk}/").content.decode()
    labels = f'org="{tenant_a.org.slug}",project="{tenant_a.project.slug}",app="{tenant_a.app.slug}",' \
             'workspace="DEV",runtime="main",service="web"'
    assert f"dice_service_connections_total{{{labels}}} 12" in body
    assert f"dice_service_first_byte_seconds_sum{{{labels}}} 0.5" in body
    assert f"dice_service_first_byte_seconds_count{{{labels}}} 10" in body
    assert "# TYPE dice_service_connections_total counter" in body


@pytest.mark.django_db(transaction=True)
def test_cluster_check_says_where_metrics_come_from(tenant_a, dice_cli, settings, tmp_path):
    """The capability report names the source usage() reads (Kubernetes: the metrics API or the
    kubelets' summary API, tests/k8s*/test_metrics*); the cluster page and `dice cluster show` say it."""
    from apps.clusters.models import Cluster
    from apps.clusters.services import run_check

    settings.DICE_LOCAL_ROOT = tmp_path / "local"
    local = Cluster.local()
    report = run_check(local)
    assert report["metrics"]["source"] == "proc" and report["features"]["metrics"] is True
    page = tenant_a.browser_client().get(local.get_absolute_url()).content.decode()
    assert '<dd id="metrics-source">from each replica&#x27;s process tree, read from /proc</dd>' in page
    code, out, err = dice_cli(tenant_a.owner)("cluster", "show", "local")
    assert code == 0, err
    assert "metrics:         proc: each replica's process tree, read from /proc" in out


@pytest.mark.django_db(transaction=True)
def test_cluster_usage_socket_pushes_new_samples_inside_the_scope(tenant_a, tenant_b, settings, tmp_path):
    """/ws/clusters/<id>/usage/ tells the cluster page of new node samples; a cluster the user may
    not use is refused (4404), and anonymous users too (4401)."""
    from asgiref.sync import sync_to_async
    from channels.routing import URLRouter
    from channels.testing import WebsocketCommunicator
    from django.contrib.auth.models import AnonymousUser

    from apps.clusters.models import Cluster
    from dice_console.routing import websocket_urlpatterns
    from tests.test_realtime import run_async

    settings.DICE_LOCAL_ROOT = tmp_path / "local"
    local = Cluster.local()
    private = Cluster.objects.create(name="b-own", kind="kubernetes", organization=tenant_b.org)

    async def connect(user, cluster_id):
        comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/clusters/{cluster_id}/usage/")
        comm.scope["user"] = user
        connected, code = await comm.connect()
        return comm, connected, code

    async def scenario():
        from tests.logs_helpers import refused_code

        for user, cluster, code in ((tenant_a.owner, private.pk, 4404), (AnonymousUser(), local.pk, 4401)):
            comm, connected, _ = await connect(user, cluster)
            assert connected and await refused_code(comm) == code
        comm, connected, _ = await connect(tenant_a.owner, local.pk)
        assert connected
        assert await sync_to_async(metrics.collect_nodes)(local) == 1
        message = await comm.receive_json_from(timeout=5)
        assert message["type"] == "metrics" and message["cluster"] == local.pk
        await comm.disconnect()

    run_async(scenario)
