"""Alert rules: made through the API, page and CLI (scoped, validated), evaluated by the worker on
the stored samples: firing only after the duration, once, and resolving, each notified."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from apps.monitoring import alerts
from apps.monitoring.models import AlertRule, MetricSample, NotificationDelivery


@pytest.fixture
def runtime(tenant_a):
    from apps.clusters.models import Cluster
    from apps.deploy.models import Runtime

    return Runtime.objects.create(application=tenant_a.app, workspace=tenant_a.project.workspaces.get(kind="DEV"),
                                  name="main", cluster=Cluster.objects.get(name="local"))


def _samples(runtime, values, now, step=30):
    """Samples of service web, the last one at `now`, `step` seconds apart."""
    MetricSample.objects.bulk_create([MetricSample(
        runtime=runtime, service="web", at=now - datetime.timedelta(seconds=step * (len(values) - 1 - i)),
        cpu_millicores=v, memory_bytes=64 * 1024 * 1024, replicas=1, ready=1) for i, v in enumerate(values)])


def test_fires_after_the_duration_once_then_resolves(tenant_a, runtime):
    from apps.monitoring import services

    services.create_channel(tenant_a.owner, tenant_a.project, name="mail", kind="email",
                            recipients="ops@example.org", events=["alert.firing", "alert.resolved"])
    rule = alerts.create_rule(tenant_a.owner, runtime, name="hot", service="web", metric="cpu_millicores",
                              operator="above", threshold=500, duration=120)
    now = timezone.now()
    _samples(runtime, [100, 900, 900, 900], now)  # above for 90 s only: not yet
    assert alerts.evaluate(rule, now) is None and rule.state == "ok"
    _samples(runtime, [900, 900], now + datetime.timedelta(seconds=60))
    later = now + datetime.timedelta(seconds=60)
    assert alerts.evaluate(rule, later) == "alert.firing"
    assert alerts.evaluate(rule, later) is None  # once
    rule.refresh_from_db()
    assert rule.state == "firing" and rule.value == 900
    _samples(runtime, [200], later + datetime.timedelta(seconds=30))
    assert alerts.evaluate(rule, later + datetime.timedelta(seconds=30)) == "alert.resolved"
    events = list(NotificationDelivery.objects.order_by("pk").values_list("event", "subject"))
    assert [e for e, _ in events] == ["alert.firing", "alert.resolved"]
    assert "Alert hot firing: web CPU 900 (above 500 for 120s)" in events[0][1]


def test_memory_and_below_rules(tenant_a, runtime):
    now = timezone.now()
    _samples(runtime, [0, 0, 0], now)
    mem = alerts.create_rule(tenant_a.owner, runtime, name="mem", service="web", metric="memory_mib",
                             threshold=32, duration=60)
    idle = alerts.create_rule(tenant_a.owner, runtime, name="idle", service="web", metric="cpu_millicores",
                              operator="below", threshold=1, duration=60)
    assert alerts.evaluate(mem, now) == "alert.firing" and mem.value == 64
    assert alerts.evaluate(idle, now) == "alert.firing"
    assert alerts.evaluate_all()["rules"] == 2


def test_api_validation_and_scope(tenant_a, tenant_b, runtime):
    now = timezone.now()
    _samples(runtime, [1, 2], now)
    api = tenant_a.api()
    made = api.post("/api/alerts/rules/", {"runtime": runtime.pk, "name": "hot", "service": "web",
                                           "metric": "cpu_millicores", "threshold": 500, "duration": 60}, format="json")
    assert made.status_code == 201, made.content
    assert made.json()["state"] == "ok" and made.json()["operator"] == "above"
    for body, field in (({"service": "nope"}, "service"), ({"metric": "disk"}, "metric"),
                        ({"duration": -1}, "duration"), ({"name": "hot"}, "name")):
        bad = api.post("/api/alerts/rules/", {"runtime": runtime.pk, "name": "x", "service": "web",
                                              "metric": "cpu_millicores", "threshold": 1, **body}, format="json")
        assert bad.status_code == 400 and field in bad.json(), (body, bad.content)
    assert AlertRule.objects.count() == 1
    b = tenant_b.api()
    assert b.get("/api/alerts/rules/").json()["results"] == []
    assert b.get(f"/api/alerts/rules/{made.json()['id']}/").status_code == 404
    stolen = b.post("/api/alerts/rules/", {"runtime": runtime.pk, "name": "x", "service": "web",
                                           "metric": "cpu_millicores", "threshold": 1}, format="json")
    assert stolen.status_code == 400 and "runtime" in stolen.json()


def test_page_and_cli(tenant_a, runtime, dice_cli):
    client = tenant_a.browser_client()
    url = f"/orgs/{tenant_a.org.slug}/{tenant_a.project.slug}/notifications/"
    added = client.post(url, {"add_rule": "1", "runtime": runtime.pk, "name": "slow", "service": "web",
                              "metric": "restarts", "operator": "above", "threshold": 3, "duration": 0})
    assert added.status_code == 302, added.content.decode()[-2000:]
    page = client.get(url).content.decode()
    assert "slow" in page and "web restarts above 3.0 for 0s" in page
    cli = dice_cli(tenant_a.owner)
    app = f"{tenant_a.org.slug}/{tenant_a.project.slug}/{tenant_a.app.slug}"
    code, out, err = cli("alert", "add", app, "-w", "DEV", "hot", "--service", "web", "--metric", "cpu_millicores",
                         "--threshold", "800", "--duration", "60")
    assert code == 0, err
    code, out, _ = cli("alert", "list", app, "-w", "DEV")
    assert "hot" in out and "slow" in out
    assert cli("alert", "remove", app, "-w", "DEV", "hot")[0] == 0
    assert list(AlertRule.objects.values_list("name", flat=True)) == ["slow"]
