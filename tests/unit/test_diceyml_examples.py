"""Our own dice.yml examples (tests/data/diceyml) through the parser: every feature of the format
as docs/SPEC.md describes it, in every workspace, so a fresh clone tests it all."""

from __future__ import annotations

import json

import pytest

from diceyml import effective_spec, merge_overlay, parse_dice_yml, validate_dice_yml
from speckit import SpecInvalid
from tests.conftest import DATA

OWN = DATA / "diceyml"
OVERLAY, OVERLAY_BASE = "bookshop_overlay.yml", "bookshop.yml"
FILES = sorted(p.name for p in OWN.glob("*.yml") if p.name != OVERLAY)
WORKSPACES = [None, "DEV", "test", "Staging", "PROD"]


def read(name: str) -> str:
    return (OWN / name).read_text(encoding="utf-8")


def test_examples_are_there():
    assert {"blog.yml", "bookshop.yml", "legacy.yml", "platform.yml"} <= set(FILES)


# legacy.yml and blog.yml have basic addons: refused in PROD (test_basic_addon_refused_in_prod_naming_the_line).
CASES = [(n, w) for n in FILES for w in WORKSPACES if not (n in ("legacy.yml", "blog.yml") and w == "PROD")]


@pytest.mark.parametrize(("name", "workspace"), CASES)
def test_example_parses(name, workspace):
    doc = parse_dice_yml(read(name), source=name, workspace=workspace)
    assert doc.version == "2.0" and (doc.services or doc.jobs)
    json.dumps(doc.effective())


def test_basic_addon_refused_in_prod_naming_the_line():
    errors = validate_dice_yml(read("legacy.yml"), source="legacy.yml", workspace="PROD")
    assert [(e.path, e.line) for e in errors] == [("addons.db.plan", 44)]
    assert "size basic is not allowed in production" in errors[0].message


def test_bookshop_services_in_full():
    doc = parse_dice_yml(read("bookshop.yml"))
    front = doc.services["storefront"]
    assert front.cmd == "gunicorn shop.wsgi --bind 0.0.0.0:8080"  # a list of words, joined
    assert [(p.port, p.protocol, p.l4_protocol, p.expose, p.default) for p in front.ports] == [
        (8080, "HTTP", "TCP", True, True), (9102, "TCP", "TCP", False, False), (5353, "UDP", "UDP", False, False)]
    assert front.image_password == "((REGISTRY_PASSWORD))"  # a secret config, filled at deploy time
    assert front.hosts == ["10.0.0.5 books.internal cache.internal"]
    res = front.resources
    assert (res.cpu, res.max_cpu, res.mem, res.max_mem, res.disk) == (0.5, 1, 512, 1024, 200)
    assert (res.emptydir_size, res.ephemeral_storage_size, res.network.mode) == (2, 4, "container")
    dep = front.deployments
    assert (dep.replicas, dep.policies, dep.labels, dep.selectors) == (2, "affinity", {"lane": "blue"},
                                                                      {"zone": ["east", "west"]})
    assert front.depends_on == ["catalog", "search"]
    assert (front.health_check.kind, front.health_check.http.path, front.health_check.duration) == ("http", "/healthz", 90)
    assert [(b.host, b.container, b.type) for b in front.binds] == [
        ("/var/lib/bookshop/covers", "/covers", "ro"), ("/var/log/bookshop", "/logs", "rw")]
    assert [(v.name, v.type, v.size, v.target_path, v.read_only) for v in front.volumes] == [
        ("uploads", "nfs", None, "/uploads", False), ("vol-tmp-scratch", "local", None, "/tmp/scratch", False),
        ("vol-index", "ssd", 5, "/index", True)]
    assert front.sidecars["log-shipper"].shared_dirs[0].sidecar == "/input"
    assert front.init["migrate"].cmd == "python manage.py migrate"
    assert front.labels == {"team": "web"} and front.annotations == {"bookshop.example/owner": "web-team"}
    assert [(e.domain, e.path, e.backend_path, e.wildcard) for e in front.endpoints] == [
        ("books.*", "/", "/", True), ("shop.example.com", "/api", "/v1", False)]
    assert front.k8s_snippet.container["imagePullPolicy"] == "IfNotPresent"
    catalog = doc.services["catalog"]
    assert catalog.ports[0].expose is True  # the legacy `expose` list marks the port
    assert catalog.health_check.kind == "exec"  # the empty http block beside it is dropped
    assert doc.services["node-agent"].deployments.workload == "per_node"
    assert doc.meta == {"owner": "shop-team", "tier": "web"}


def test_bookshop_jobs_and_addons():
    doc = parse_dice_yml(read("bookshop.yml"))
    reindex = doc.jobs["reindex"]
    assert (reindex.schedule, reindex.backoff_limit, reindex.active_deadline) == ("30 2 * * *", 2, 3600)
    assert doc.jobs["warm-cache"].broadcast is True and doc.jobs["import-once"].schedule is None
    plans = {name: (a.type, a.size, a.env_prefix) for name, a in doc.addons.items()}
    assert plans["db"] == ("mysql", "basic", "SHOP_DB") and plans["cache"] == ("redis", "basic", "REDIS")
    assert plans["orders"] == ("postgresql", "basic", "ORDERS") and plans["payments"][0] == "custom"
    assert doc.addons["db"].options == {"version": "8.0", "charset": "utf8mb4"}


def test_bookshop_environments_and_values():
    text = read("bookshop.yml")
    base = parse_dice_yml(text)
    assert base.envs["DB_HOST"] == "db.internal" and base.envs["FEATURE_REVIEWS"] == "true"  # ${key:default}
    dev = parse_dice_yml(text, workspace="DEV")
    assert dev.environment == "development" and dev.envs["DB_HOST"] == "db.dev.internal"
    assert dev.envs["LOG_LEVEL"] == "debug" and dev.services["storefront"].deployments.replicas == 1
    front = dev.services["storefront"].envs
    assert front["RUNTIME_PORT"] == "${env.PORT}" and front["LEGACY_TEMPLATE"] == "<%shop.tpl%>"
    assert front["CATALOG_URL"] == "http://${platform.DICE_PROJECT_NAME}-catalog"  # filled at deploy time
    staging = parse_dice_yml(text, workspace="STAGING")
    assert staging.services["storefront"].resources.max_mem == 2048
    assert staging.envs["DB_HOST"] == "db.internal"  # no staging value: the default
    prod = effective_spec(text, workspace="production")
    assert prod["services"]["storefront"]["deployments"]["replicas"] == 4
    assert prod["services"]["catalog"]["deployments"]["replicas"] == 2
    assert prod["addons"]["db"]["plan"] == "mysql:professional"  # the environment's addons replace the base
    assert prod["addons"]["coordination"]["plan"] == "zookeeper:ultimate"  # legacy large
    assert "environments" not in prod and "values" not in prod


def test_overlay_alone_is_not_a_complete_spec():
    with pytest.raises(SpecInvalid) as info:
        parse_dice_yml(read(OVERLAY), source=OVERLAY)
    (err,) = info.value.errors
    assert "not a complete spec (an overlay?)" in err.message and err.path == ""
    assert parse_dice_yml(read(OVERLAY), source=OVERLAY, overlay=True).addons["cache"].size == "ultimate"


def test_overlay_merged_onto_its_base():
    doc = merge_overlay(read(OVERLAY_BASE), read(OVERLAY), base_source=OVERLAY_BASE, overlay_source=OVERLAY)
    front = doc.services["storefront"]
    assert front.envs["EXTRA"] == "1" and front.envs["PAGE_SIZE"] == "50"  # merged, not replaced
    assert front.health_check.http.path == "/ready"
    assert front.image == "registry.example/bookshop/storefront:1.4.2"  # kept from the base
    assert doc.envs["FEATURE_REVIEWS"] == "false"
    assert doc.addons["cache"].plan == "redis:ultimate" and doc.addons["db"].plan == "mysql:basic"


def test_legacy_forms():
    doc = parse_dice_yml(read("legacy.yml"))
    web = doc.services["web"]
    assert [(p.port, p.protocol, p.expose) for p in web.ports] == [(8080, "TCP", True), (8443, "HTTPS", False)]
    assert web.health_check is None  # http: {} and exec: {}
    assert (web.deployments.policies, web.deployments.workload) == ("shuffle", "default")
    assert web.envs == {"WORKERS": "4", "EMPTY": ""} and web.hosts == []
    assert [v.name for v in web.volumes] == ["vol-home-admin-logs", "data"]
    assert doc.services["worker"].cmd == "python worker.py --queue default"
    assert {n: a.plan for n, a in doc.addons.items()} == {
        "zk": "zookeeper:ultimate", "db": "mysql:basic", "pg": "postgresql:professional"}


def test_platform_values_per_workspace():
    text = read("platform.yml")
    base = parse_dice_yml(text)
    assert len(base.services) == 30
    gateway = base.services["gateway"]
    assert (gateway.resources.cpu, gateway.resources.mem, gateway.deployments.replicas) == (0.5, 512, 2)
    assert base.envs["OAUTH_CLIENT_ID"] == "<%$.OAuth.ClientId%>" and base.envs["TRACE_SAMPLE"] == "0.1"
    test = parse_dice_yml(text, workspace="TEST")
    assert test.services["gateway"].resources.cpu == 0.1 and test.services["reports"].deployments.replicas == 1
    prod = parse_dice_yml(text, workspace="PROD")
    assert prod.services["accounts"].binds[0].host == "<%$.Storage.MountPoint%>/northwind/accounts"
    assert prod.envs["REGION"] == "eu-2" and prod.addons["mysql"].size == "professional"
