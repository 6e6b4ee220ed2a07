"""Item 4: the audit log shows each member only what they may see, over the API and the page,
and secret values never reach it."""

from __future__ import annotations

from tests.security.conftest import http, login


def _events(client) -> list[dict]:
    r = client.get("/api/audit-events/", params={"limit": 1000})
    assert r.status_code == 200, r.text
    return r.json()["results"]


def test_an_application_guest_sees_only_that_applications_events(live, world):
    from apps.pipelines import services as pipeline_services
    from apps.projects import services

    owner = world.a.users["owner"]
    services.update_project(owner, world.a.other_project, description="hidden work")
    services.update_application(owner, world.a.app, description="the guest's app")
    pipeline_services.set_config(owner, world.a.other_project, key="DB_URL", value="postgres://u:hunter2@db/x")
    guest = http(live, world.token(world.a.users["app-guest"]))
    assert guest.get(f"/api/projects/{world.a.other_project.pk}/").status_code == 404
    events = _events(guest)
    reprs = {e["object_repr"] for e in events}
    assert str(world.a.app) in reprs
    # (beta's objects all carry "beta"; a bare "b-" also matched the guest's own token, whose
    # random key prefix shows in its name)
    assert not any("hidden" in r or "beta" in r for r in reprs), reprs
    assert "hunter2" not in guest.get("/api/audit-events/", params={"limit": 1000}).text
    # Their project's own events (not their application's) are not theirs either.
    assert all(e["object_type"] != "project" for e in events), events
    # An organization-level guest sees the organization's events, never beta's.
    org_guest = _events(http(live, world.token(world.a.users["guest"])))
    assert any("hidden" in e["object_repr"] or e["object_repr"] == str(world.a.other_project) for e in org_guest)
    assert not any(e["organization"] == "beta-org" for e in org_guest)
    # The audit page reads through the same scope.
    page = login(live, "alpha-app-guest").get("/audit/")
    assert page.status_code == 200 and str(world.a.other_project) not in page.text


def test_secret_values_are_recorded_only_as_changed(live, world):
    owner = http(live, world.token(world.a.users["owner"]))
    project = world.a.project.pk
    for key, value, secret in (("API_TOKEN", "s3cr3t-token-value", True),
                               ("DATABASE_PASSWORD", "plain-but-a-password", False),
                               ("webhook_secret", "hook-secret-value", False)):
        r = owner.post("/api/project-configs/", json={"project": project, "key": key, "value": value,
                                                      "secret": secret})
        assert r.status_code == 201, r.text
    from apps.projects.models import AuditEvent

    rows = AuditEvent.objects.filter(object_type="projectconfig")
    assert rows.count() == 3
    text = str(list(rows.values("before", "after")))
    for value in ("s3cr3t-token-value", "plain-but-a-password", "hook-secret-value"):
        assert value not in text
    assert all(r.after["value"] == "changed" for r in rows)
    # A plain, non-credential config keeps its value in the log (it is shown on the page anyway).
    owner.post("/api/project-configs/", json={"project": project, "key": "REGION", "value": "eu-west"})
    assert AuditEvent.objects.filter(object_type="projectconfig").latest("id").after["value"] == "eu-west"
