"""The CMDB: diffs and history written only on change, relations, organization scoping, search,
the item page with its graph, the reports and the API."""

from __future__ import annotations

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.clusters.models import Cluster
from apps.cmdb import services
from apps.cmdb.models import Change, ConfigurationItem
from tests.api_cases import ScopedAPICases, unique


def runtime(tenant, name=None, **attrs):
    key = services.runtime_key(tenant.org.slug, tenant.project.slug, tenant.app.slug, "PROD", name or unique("rt"))
    return services.record_item("runtime", key, {"replicas": 1, **attrs}, "deploy", organization=tenant.org,
                                cluster=Cluster.local())


def node(name="node-1"):
    return services.record_item("node", services.node_key("local", name), {"cpu": 4}, "sync:local", name=name,
                                cluster=Cluster.local())


# ---- diff and history --------------------------------------------------------------------------


def test_diff_is_per_leaf():
    assert services.diff({"a": 1, "b": {"c": 1, "d": [1]}}, {"a": 1, "b": {"c": 2, "d": [1, 2]}, "e": "x"}) == {
        "b.c": {"old": 1, "new": 2}, "b.d": {"old": [1], "new": [1, 2]}, "e": {"old": None, "new": "x"}}
    assert services.diff({"a": 1}, {"a": 1}) == {}


def test_history_only_when_something_changed(db):
    key = "acme/shop/web/prod/main"
    item = services.record_item("runtime", key, {"replicas": 1, "image": "web:1"}, "deploy")
    assert [c.action for c in item.changes.all()] == ["created"]
    services.record_item("runtime", key, {"replicas": 1, "image": "web:1"}, "sync:x")
    assert item.changes.count() == 1
    item = services.record_item("runtime", key, {"replicas": 3, "image": "web:1"}, "sync:x")
    change = item.changes.first()
    assert (change.action, change.source, change.diff) == ("updated", "sync:x", {"replicas": {"old": 1, "new": 3}})
    assert item.attributes["replicas"] == 3 and item.source == "sync:x"
    assert services.mark_absent("runtime", [], "sync:x") == 1
    assert services.mark_absent("runtime", [], "sync:x") == 0  # once
    item.refresh_from_db()
    assert not item.present and item.changes.first().action == "removed"
    item = services.record_item("runtime", key, {"replicas": 3, "image": "web:1"}, "sync:x")
    assert item.present and item.changes.first().action == "restored"
    assert item.changes.count() == 4
    with pytest.raises(ValueError):
        services.record_item("spaceship", "x", {}, "test")


def test_relations_are_replaced_and_unknown_targets_skipped(db):
    n1, n2 = node("n1"), node("n2")
    rt = services.record_item("runtime", "o/p/a/dev/main", {}, "sync", relations=[
        ("runs-on", n1), ("runs-on", ("node", "local/n2")), ("depends-on", ("runtime", "nope"))])
    assert {r.target.name for r in rt.relations_out.all()} == {"n1", "n2"}
    services.record_item("runtime", "o/p/a/dev/main", {}, "sync", relations=[("runs-on", n2)])
    assert [r.target for r in rt.relations_out.all()] == [n2]
    services.record_item("runtime", "o/p/a/dev/main", {}, "sync")  # relations=None keeps them
    assert rt.relations_out.count() == 1
    assert list(services.running_on(ConfigurationItem.objects.all(), n2)) == [rt]


# ---- organization scoping -----------------------------------------------------------------------


def test_org_items_are_visible_only_to_their_organization(tenant_a, tenant_b):
    mine, theirs = runtime(tenant_a), runtime(tenant_b)
    shared = node()
    orphan = services.record_item("runtime", "ghost/p/a/dev/x", {}, "sync", org_slug="ghost")
    api = tenant_a.api()
    ids = {i["id"] for i in api.get("/api/cmdb/items/", {"limit": 1000}).json()["results"]}
    assert mine.pk in ids and shared.pk in ids
    assert theirs.pk not in ids and orphan.pk not in ids
    assert api.get(f"/api/cmdb/items/{theirs.pk}/").status_code == 404
    assert api.get(f"/api/cmdb/items/{theirs.pk}/history/").status_code == 404
    page = tenant_a.browser_client()
    assert page.get(reverse("cmdb:item", args=[theirs.pk])).status_code == 404
    assert page.get(reverse("cmdb:item", args=[mine.pk])).status_code == 200
    assert theirs.name not in page.get(reverse("cmdb:items"), {"kind": "runtime"}).content.decode()
    changes = {c["item"]["id"] for c in api.get("/api/cmdb/changes/", {"limit": 1000}).json()["results"]}
    assert mine.pk in changes and theirs.pk not in changes


def test_relations_to_hidden_items_are_not_shown(tenant_a, tenant_b):
    n = node()
    runtime_b = runtime(tenant_b)
    services.set_relations(runtime_b, [("runs-on", n)])
    r = tenant_a.api().get(f"/api/cmdb/items/{n.pk}/")
    assert r.json()["relations"] == []
    page = tenant_a.browser_client().get(reverse("cmdb:item", args=[n.pk])).content.decode()
    assert runtime_b.name not in page
    related = tenant_b.api().get(f"/api/cmdb/items/{n.pk}/related/", {"relation": "runs-on"}).json()
    assert [i["id"] for i in related["results"]] == [runtime_b.pk]


class TestItemAPI(ScopedAPICases):
    basename = "cmdb-item"
    updatable = deletable = False

    def make(self, tenant):
        return runtime(tenant)


class TestChangeAPI(ScopedAPICases):
    basename = "cmdb-change"
    updatable = deletable = False

    def make(self, tenant):
        return runtime(tenant).changes.first()


# ---- search, pages, reports --------------------------------------------------------------------


def test_search_and_filter_across_kinds(tenant_a):
    n = node("worker-blue")
    rt = runtime(tenant_a, name="blue-green")
    api = tenant_a.api()

    def names(**params):
        return {i["name"] for i in api.get("/api/cmdb/items/", {**params, "limit": 1000}).json()["results"]}

    assert {n.name, rt.name} <= names(q="blue")
    assert names(q="blue", kind="node") == {"worker-blue"}
    assert n.name in names(cluster="local")
    assert names(cluster="elsewhere") == set()
    r = tenant_a.browser_client().get(reverse("cmdb:items"), {"q": "blue", "kind": "node"},
                                      HTTP_HX_REQUEST="true", HTTP_HX_TARGET="object-table")
    assert "worker-blue" in r.content.decode() and "<html" not in r.content.decode()


def test_item_page_draws_the_relations(tenant_a):
    n = node()
    addon = services.record_item("addon", "x/mysql", {"version": "8"}, "deploy", organization=tenant_a.org)
    rt = runtime(tenant_a)
    services.set_relations(rt, [("runs-on", n), ("uses-addon", addon)])
    rt = services.record_item("runtime", rt.key, {"replicas": 2}, "sync:local")
    body = tenant_a.browser_client().get(reverse("cmdb:item", args=[rt.pk])).content.decode()
    assert "<svg" in body and body.count("<line") == 2
    assert "runs-on" in body and "uses-addon" in body and n.get_absolute_url() in body
    assert "<del>1</del>" in body and "<ins>2</ins>" in body  # the history diff


def test_reports(tenant_a):
    n = node()
    addon = services.record_item("addon", "x/redis", {}, "deploy", organization=tenant_a.org)
    rt = runtime(tenant_a, name="main")
    services.set_relations(rt, [("runs-on", n), ("uses-addon", addon)])
    old = services.record_item("host", "old-host", {}, "manual")
    Change.objects.filter(item=old).update(created=timezone.now() - datetime.timedelta(days=2))
    client = tenant_a.browser_client()
    body = client.get(reverse("cmdb:reports"), {"node": n.pk, "addon": addon.pk}).content.decode()
    assert body.count(rt.get_absolute_url()) >= 2
    assert "old-host" not in body.split("What changed")[1]
    api = tenant_a.api()
    recent = {c["item"]["name"] for c in api.get("/api/cmdb/changes/", {"hours": 24}).json()["results"]}
    assert rt.name in recent and "old-host" not in recent
    used_by = api.get(f"/api/cmdb/items/{addon.pk}/related/", {"relation": "uses-addon"}).json()["results"]
    assert [i["id"] for i in used_by] == [rt.pk]
    history = api.get(f"/api/cmdb/items/{rt.pk}/history/").json()
    assert history["results"][0]["action"] == "created"
