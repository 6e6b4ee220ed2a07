"""Releases over the API: the shared suite (create and read only), numbering, immutability, refusals
that change nothing, diffs per workspace, and the dice.yml validate and schema endpoints."""

from __future__ import annotations

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from apps.deploy import services
from apps.deploy.models import ImmutableRelease, Release
from apps.projects.models import Application, AuditEvent
from tests.api_cases import ScopedAPICases
from tests.conftest import CONFORMANCE, DATA

DICE = CONFORMANCE / "dice"
SAMPLE = (DATA / "diceyml" / "blog.yml").read_text()

SMALL = """\
version: "2.0"
services:
  web:
    image: registry.example/shop/web:1.0
    ports: [8080]
    depends_on: [api]
    resources: {cpu: 0.5, mem: 256}
  api:
    image: registry.example/shop/api:1.0
    ports: [9090]
    deployments: {replicas: 2}
jobs:
  migrate:
    image: registry.example/shop/api:1.0
    cmd: ./migrate
addons:
  db:
    plan: mysql:professional
environments:
  production:
    services:
      api:
        deployments: {replicas: 4}
"""

BAD = """\
version: "2.0"
services:
  api:
    image: x
    resources:
      cpu: 1
      max_cpu: 0.5
    depends_on: [nope]
"""


def release(tenant, text=SMALL, images=None, **kwargs):
    return services.create_release(tenant.owner, tenant.app, spec_text=text, images=images, **kwargs)


class TestReleaseAPI(ScopedAPICases):
    basename = "release"
    updatable = False
    deletable = False

    def make(self, tenant):
        return release(tenant)

    def create_data(self, tenant):
        return {"application": tenant.app.pk, "spec_text": SMALL, "images": {"api": "registry.example/api:2"}}

    def test_delete_and_update_are_refused(self, tenant_a):
        obj = self.make(tenant_a)
        api = tenant_a.api()
        assert api.delete(self.detail_url(obj)).status_code == 405
        assert api.patch(self.detail_url(obj), {"description": "x"}, format="json").status_code == 405
        assert api.put(self.detail_url(obj), self.create_data(tenant_a), format="json").status_code == 405
        assert Release.objects.filter(pk=obj.pk, description="").exists()


# ---- the model and the service ----------------------------------------------------------------


def test_versions_count_up_per_application(tenant_a, tenant_b):
    assert [release(tenant_a).version for _ in range(3)] == [1, 2, 3]
    assert release(tenant_b).version == 1
    other_app = Application.objects.create(project=tenant_a.project, slug="second")
    r = services.create_release(tenant_a.owner, other_app, spec_text=SMALL, images=None)
    assert r.version == 1


@pytest.mark.postgres  # SQLite's in-memory test database locks whole tables instead of waiting
@pytest.mark.django_db(transaction=True)
def test_concurrent_releases_get_distinct_versions():
    from tests.conftest import Tenant

    tenant = Tenant("race")
    versions, errors = [], []

    def make():
        try:
            for _ in range(3):
                versions.append(release(tenant).version)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=make) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(versions) == list(range(1, 10))


def test_a_lost_numbering_race_retries_with_the_next_version(tenant_a, monkeypatch):
    """Where the row lock is a no-op, a writer that read a stale maximum hits the unique constraint
    and takes the next number instead."""
    from django.db.models import Max

    first = release(tenant_a)
    rival = Release(**{f.attname: getattr(first, f.attname) for f in Release._meta.concrete_fields})
    rival.pk, rival.version = None, 2
    Release.objects.bulk_create([rival])  # a concurrent creator committed v2 after our read
    reads = []

    def stale_max(field):
        reads.append(field)
        return Max(field) - 1 if len(reads) == 1 else Max(field)

    monkeypatch.setattr(services, "Max", stale_max)
    r = release(tenant_a)
    assert len(reads) == 2 and r.version == 3
    assert sorted(Release.objects.values_list("version", flat=True)) == [1, 2, 3]


def test_identical_content_is_a_new_version_with_the_same_hash(tenant_a):
    one, two = release(tenant_a), release(tenant_a)
    three = release(tenant_a, images={"api": "registry.example/shop/api:2.0"})
    assert (one.version, two.version) == (1, 2)
    assert one.content_hash == two.content_hash != three.content_hash
    assert one.spec_hash == three.spec_hash


def test_images_come_from_the_spec_overridden_by_the_map(tenant_a):
    r = release(tenant_a, images={"api": "registry.example/shop/api:2.0"})
    assert r.images == {
        "web": "registry.example/shop/web:1.0",
        "api": "registry.example/shop/api:2.0",
        "migrate": "registry.example/shop/api:1.0",
    }
    assert r.image_overrides == {"api": "registry.example/shop/api:2.0"}
    assert r.created_by == tenant_a.owner and r.created_by_name == "a-owner"


def test_a_release_is_immutable(tenant_a):
    r = release(tenant_a, description="first")
    r.description = "changed"
    with pytest.raises(ImmutableRelease):
        r.save()
    with pytest.raises(ImmutableRelease):
        Release.objects.filter(pk=r.pk).update(description="changed")
    r.refresh_from_db()
    assert r.description == "first"


def test_an_invalid_spec_changes_nothing_and_names_the_lines(tenant_a):
    events = AuditEvent.objects.count()
    with pytest.raises(services.SpecRejected) as caught:
        release(tenant_a, text=BAD)
    messages = caught.value.message_dict["spec_text"]
    assert any(m.startswith("line 7: services.api.resources.max_cpu:") for m in messages), messages
    assert any(m.startswith("line 8: services.api.depends_on") for m in messages), messages
    assert not Release.objects.exists()
    assert AuditEvent.objects.count() == events

    response = tenant_a.api().post(
        reverse("api:release-list"), {"application": tenant_a.app.pk, "spec_text": BAD}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert {"path": "services.api.resources.max_cpu", "line": 7} in [
        {"path": e["path"], "line": e["line"]} for e in body["errors"]
    ]
    assert body["spec_text"][0].startswith("line ")
    assert not Release.objects.exists()


def test_every_environment_must_parse(tenant_a):
    text = SMALL + "  test:\n    services:\n      api:\n        resources: {cpu: -1}\n"
    with pytest.raises(ValidationError) as caught:
        release(tenant_a, text=text)
    assert "environments.test" in str(caught.value.message_dict["spec_text"])


def test_an_unknown_image_key_is_refused_by_name(tenant_a):
    with pytest.raises(ValidationError) as caught:
        release(tenant_a, images={"apj": "registry.example/x:1"})
    message = caught.value.message_dict["images"][0]
    assert "'apj' is not a service or job" in message and "did you mean 'api'" in message
    response = tenant_a.api().post(reverse("api:release-list"), {
        "application": tenant_a.app.pk, "spec_text": SMALL, "images": {"nope": "x:1"},
    }, format="json")
    assert response.status_code == 400 and "'nope'" in response.json()["images"][0]
    assert not Release.objects.exists()


def test_a_guest_may_not_release(tenant_a):
    client = APIClient()
    client.force_authenticate(tenant_a.add_user("gus", "guest"))
    response = client.post(reverse("api:release-list"), {"application": tenant_a.app.pk, "spec_text": SMALL},
                           format="json")
    assert response.status_code == 403
    assert not Release.objects.exists()


def test_create_records_an_audit_event(tenant_a):
    r = release(tenant_a)
    event = AuditEvent.objects.filter(object_type="release").latest("id")
    assert event.action == "create" and event.object_id == str(r.pk)
    assert event.organization == tenant_a.org and event.after["version"] == 1


# ---- reading ----------------------------------------------------------------------------------


def test_detail_has_the_summary_and_the_text(tenant_a):
    r = release(tenant_a, text=SAMPLE, images={"posts": "reg/posts:2"})
    body = tenant_a.api().get(reverse("api:release-detail", args=[r.pk])).json()
    assert body["spec_text"] == SAMPLE and body["version"] == 1 and len(body["hash"]) == 64
    services_ = {s["name"]: s for s in body["summary"]["services"]}
    assert services_["reader"]["depends_on"] == ["posts"]
    assert services_["reader"]["ports"][0]["port"] == 8080
    assert services_["posts"]["image"] == "reg/posts:2"
    assert {(a["name"], a["type"], a["size"]) for a in body["summary"]["addons"]} == {
        ("mysql", "mysql", "basic"), ("zk", "zookeeper", "professional"),
    }


def test_list_filters(tenant_a):
    release(tenant_a)
    app2 = Application.objects.create(project=tenant_a.project, slug="second")
    services.create_release(tenant_a.owner, app2, spec_text=SMALL)
    api = tenant_a.api()
    url = reverse("api:release-list")
    assert api.get(url).json()["count"] == 2
    assert api.get(url, {"app": "second"}).json()["count"] == 1
    assert api.get(url, {"application": tenant_a.app.pk}).json()["count"] == 1
    assert api.get(url, {"org": tenant_a.org.slug, "project": tenant_a.project.slug}).json()["count"] == 2
    assert api.get(url, {"org": "b-org"}).json()["count"] == 0
    assert "spec_text" not in api.get(url).json()["results"][0]


def test_a_large_specs_release(tenant_a):
    images = {name: f"registry.example/northwind/{name}:9" for name in ("gateway", "billing")}
    r = release(tenant_a, text=(DATA / "diceyml" / "platform.yml").read_text(), images=images)
    body = tenant_a.api().get(reverse("api:release-detail", args=[r.pk])).json()
    assert body["images"]["gateway"] == images["gateway"] and body["images"]["billing"] == images["billing"]
    assert body["images"]["audit"] == "registry.example/northwind/audit:2.18.0"  # from the file
    assert len(body["summary"]["services"]) == 30 and body["summary"]["missing_images"] == []


@pytest.mark.conformance
def test_the_erda_specs_release(tenant_a):
    images = {name: f"registry.example/erda/{name}:1" for name in ("erda-server", "gittar")}
    r = release(tenant_a, text=(DICE / "erda.yml").read_text(), images=images)
    body = tenant_a.api().get(reverse("api:release-detail", args=[r.pk])).json()
    assert body["images"] == images
    assert "monitor" in body["summary"]["missing_images"]


# ---- diffs ------------------------------------------------------------------------------------


def test_diff_between_two_releases_per_workspace(tenant_a):
    one = release(tenant_a)
    two = release(tenant_a, text=SMALL.replace("replicas: 4", "replicas: 6"),
                  images={"web": "registry.example/shop/web:1.1"})
    api = tenant_a.api()
    url = reverse("api:release-diff", args=[two.pk])

    prod = api.get(url, {"other": one.pk, "workspace": "PROD"}).json()
    (entry,) = prod["workspaces"]
    assert entry["workspace"] == "PROD" and entry["environment"] == "production"
    paths = {c["path"]: c for c in entry["changes"]}
    assert paths["services.api.deployments.replicas"]["old"] == 4
    assert paths["services.api.deployments.replicas"]["new"] == 6
    assert paths["services.web.image"]["new"] == "registry.example/shop/web:1.1"
    assert "-      replicas: 4" in entry["unified"] and "+      replicas: 6" in entry["unified"]
    assert entry["unified"].startswith("--- v1 (PROD)\n+++ v2 (PROD)")

    dev = api.get(url, {"other": one.pk, "workspace": "development"}).json()["workspaces"][0]
    assert dev["workspace"] == "DEV"
    assert [c["path"] for c in dev["changes"]] == ["services.web.image"]

    every = api.get(url).json()  # default: the previous version, every workspace
    assert every["other"] == one.pk
    assert [w["workspace"] for w in every["workspaces"]] == ["DEV", "TEST", "STAGING", "PROD"]
    assert every["workspaces"][3]["changes"] == entry["changes"]

    assert api.get(url, {"workspace": "moon"}).status_code == 400


def test_diff_refuses_another_organizations_release(tenant_a, tenant_b):
    mine, theirs = release(tenant_a), release(tenant_b)
    api = tenant_a.api()
    assert api.get(reverse("api:release-diff", args=[mine.pk]), {"other": theirs.pk}).status_code == 404
    assert api.get(reverse("api:release-diff", args=[theirs.pk]), {"other": mine.pk}).status_code == 404


def test_diff_of_a_basic_addon_in_prod_reports_the_error(tenant_a):
    one = release(tenant_a, text=SMALL.replace("mysql:professional", "mysql:basic"))
    body = tenant_a.api().get(reverse("api:release-diff", args=[one.pk]), {"workspace": "PROD"}).json()
    entry = body["workspaces"][0]
    assert body["other"] is None
    assert "basic" in entry["error"] and entry["changes"] == []


# ---- dice.yml tools ---------------------------------------------------------------------------


def test_validate_endpoint(tenant_a):
    api = tenant_a.api()
    url = reverse("api:spec-validate")
    assert api.post(url, {"text": SMALL}, format="json").json() == {"valid": True, "errors": [], "warnings": []}
    body = api.post(url, {"text": BAD}, format="json").json()
    assert body["valid"] is False
    assert {"path": "services.api.resources.max_cpu", "line": 7,
            "message": "max_cpu (0.5) must be >= cpu (1)"} in body["errors"]
    basic = SMALL.replace("mysql:professional", "mysql:basic")
    assert api.post(url, {"text": basic}, format="json").json()["valid"] is True
    prod = api.post(url, {"text": basic, "workspace": "prod"}, format="json").json()
    assert prod["valid"] is False and prod["errors"][0]["path"].startswith("addons.db")
    assert api.post(url, {"text": SMALL, "workspace": "moon"}, format="json").status_code == 400
    assert api.post(url, {"text": ""}, format="json").json()["valid"] is False
    assert APIClient().post(url, {"text": SMALL}, format="json").status_code in (401, 403)


def test_schema_endpoint(tenant_a):
    url = reverse("api:spec-schema")
    for client in (tenant_a.api(), APIClient()):
        response = client.get(url)
        assert response.status_code == 200
        schema = response.json()
        assert schema["title"] == "dice.yml" and "services" in schema["properties"]
