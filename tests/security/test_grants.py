"""Items 1 and 2 of the tenancy hardening, tried over HTTP against the live server by real users
with real tokens: clusters belong to someone, and nobody grants more than they have."""

from __future__ import annotations

import pytest
import yaml

from tests.security.conftest import http

DEAD_SERVER = "https://127.0.0.1:1"


def kubeconfig(server: str = DEAD_SERVER, token: str = "tok-attacker") -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    })


def as_(live, world, org, role):
    return http(live, world.token(getattr(world, org).users[role]))


def register(client, name, **extra):
    return client.post("/api/clusters/", json={"name": name, "kubeconfig": kubeconfig(), **extra})


# ---- 1. clusters belong to someone -------------------------------------------------------------


def test_organizations_are_created_by_staff_unless_self_service_is_on(live, world, settings):
    r = as_(live, world, "a", "owner").post("/api/orgs/", json={"slug": "mine"})
    assert r.status_code == 403 and "staff" in r.text
    assert http(live, world.token(world.outsider)).post("/api/orgs/", json={"slug": "mine"}).status_code == 403
    assert http(live, world.token(world.staff)).post("/api/orgs/", json={"slug": "by-staff"}).status_code == 201
    settings.DICE_ORG_CREATION = "anyone"
    r = http(live, world.token(world.outsider)).post("/api/orgs/", json={"slug": "self-service"})
    assert r.status_code == 201, r.text


def test_another_organizations_cluster_cannot_be_seen_changed_or_used(live, world):
    alpha_ops = as_(live, world, "a", "ops")
    r = register(alpha_ops, "alpha-prod")
    assert r.status_code == 201, r.text
    assert r.json()["organization"] == "alpha-org"
    beta_owner = as_(live, world, "b", "owner")
    # The attack of the issue: point alpha's PROD cluster at the attacker's API server.
    r = beta_owner.patch("/api/clusters/alpha-prod/", json={"server": "https://evil.example:6443", "token": "x"})
    assert r.status_code == 404
    assert beta_owner.get("/api/clusters/alpha-prod/").status_code == 404
    assert "alpha-prod" not in {c["name"] for c in beta_owner.get("/api/clusters/").json()["results"]}
    # Nor bind beta's workspace to it.
    ws = world.b.project.workspaces.get(kind="PROD")
    r = beta_owner.patch(f"/api/workspaces/{ws.pk}/", json={"cluster": "alpha-prod"})
    assert r.status_code == 400, r.text
    ws.refresh_from_db()
    assert ws.cluster.name == "local"
    # Within alpha: a developer may not change it, ops and owners may; a lead binds workspaces to it.
    assert as_(live, world, "a", "developer").patch(
        "/api/clusters/alpha-prod/", json={"wildcard_domain": "x.example"}).status_code == 403
    assert as_(live, world, "a", "owner").patch(
        "/api/clusters/alpha-prod/", json={"wildcard_domain": "apps.alpha.example"}).status_code == 200
    alpha_ws = world.a.project.workspaces.get(kind="PROD")
    r = as_(live, world, "a", "lead").patch(f"/api/workspaces/{alpha_ws.pk}/", json={"cluster": "alpha-prod"})
    assert r.status_code == 200, r.text
    assert as_(live, world, "a", "developer").patch(
        f"/api/workspaces/{alpha_ws.pk}/", json={"cluster": "local"}).status_code == 403


def test_registering_for_another_organization_is_refused(live, world):
    r = register(as_(live, world, "b", "owner"), "sneaky", organization="alpha-org")
    assert r.status_code == 400 and "organization" in r.json()
    assert register(as_(live, world, "a", "developer"), "dev-cluster").status_code == 403
    assert register(http(live, world.token(world.outsider)), "nobody").status_code == 403


def test_the_shared_local_cluster_is_managed_by_staff_only(live, world):
    ratios = {"overcommit_ratios": {"DEV": {"cpu_ratio": 9}}}
    for org in ("a", "b"):
        for role in ("owner", "ops"):
            r = as_(live, world, org, role).patch("/api/clusters/local/", json=ratios)
            assert r.status_code == 403 and "platform-wide" in r.text, (org, role, r.text)
            assert as_(live, world, org, role).post("/api/clusters/local/check/").status_code == 403
    r = http(live, world.token(world.staff)).patch("/api/clusters/local/", json=ratios)
    assert r.status_code == 200, r.text


def test_platform_clusters_are_usable_by_the_organizations_granted(live, world):
    staff = http(live, world.token(world.staff))
    r = register(staff, "shared-eu", granted_to=["alpha-org"])
    assert r.status_code == 201, r.text
    assert r.json()["organization"] is None and r.json()["granted_to"] == ["alpha-org"]
    alpha = as_(live, world, "a", "owner")
    beta = as_(live, world, "b", "owner")
    assert "granted_to" not in alpha.get("/api/clusters/shared-eu/").json()  # other grants stay private
    assert beta.get("/api/clusters/shared-eu/").status_code == 404
    assert alpha.patch("/api/clusters/shared-eu/", json={"wildcard_domain": "x.example"}).status_code == 403
    ws_a = world.a.project.workspaces.get(kind="DEV")
    assert alpha.patch(f"/api/workspaces/{ws_a.pk}/", json={"cluster": "shared-eu"}).status_code == 200
    ws_b = world.b.project.workspaces.get(kind="DEV")
    assert beta.patch(f"/api/workspaces/{ws_b.pk}/", json={"cluster": "shared-eu"}).status_code == 400
    # Granting is staff's: an owner cannot grant their organization a platform cluster.
    r = alpha.patch("/api/clusters/shared-eu/", json={"granted_to": ["alpha-org", "beta-org"]})
    assert r.status_code == 403
    r = staff.patch("/api/clusters/shared-eu/", json={"granted_to": ["alpha-org", "beta-org"]})
    assert r.status_code == 200 and sorted(r.json()["granted_to"]) == ["alpha-org", "beta-org"]
    assert beta.patch(f"/api/workspaces/{ws_b.pk}/", json={"cluster": "shared-eu"}).status_code == 200


# ---- 2. nobody grants more than they have ------------------------------------------------------


def _member(world, user, **where):
    from apps.projects.models import Member

    return Member.objects.get(user=user, **where)


def test_a_lead_cannot_make_themselves_owner(live, world):
    lead = world.a.users["lead"]
    me = _member(world, lead, project__isnull=True)
    r = as_(live, world, "a", "lead").patch(f"/api/members/{me.pk}/", json={"role": "owner"})
    assert r.status_code == 403 and "own role" in r.text
    me.refresh_from_db()
    assert me.role == "lead"


def test_a_lead_cannot_grant_owner_or_ops_anywhere(live, world):
    lead = as_(live, world, "a", "lead")
    for body in ({"organization": "alpha-org", "username": "outsider", "role": "owner"},
                 {"organization": "alpha-org", "project": world.a.project.pk, "username": "outsider", "role": "owner"},
                 {"organization": "alpha-org", "username": "outsider", "role": "ops"}):
        r = lead.post("/api/members/", json=body)
        assert r.status_code == 403, (body, r.text)
    from apps.projects.models import Member

    assert not Member.objects.filter(user=world.outsider).exists()
    r = lead.post("/api/members/", json={"organization": "alpha-org", "username": "outsider", "role": "developer"})
    assert r.status_code == 201, r.text


def test_a_lead_cannot_demote_or_remove_an_owner(live, world):
    owner_member = _member(world, world.a.users["owner"])
    lead = as_(live, world, "a", "lead")
    assert lead.patch(f"/api/members/{owner_member.pk}/", json={"role": "guest"}).status_code == 403
    assert lead.delete(f"/api/members/{owner_member.pk}/").status_code == 403
    owner_member.refresh_from_db()
    assert owner_member.role == "owner"


def test_a_project_lead_grants_only_inside_the_project(live, world):
    plead = as_(live, world, "a", "proj-lead")
    r = plead.post("/api/members/", json={"organization": "alpha-org", "username": "outsider", "role": "guest"})
    assert r.status_code == 403
    r = plead.post("/api/members/", json={"organization": "alpha-org", "project": world.a.project.pk,
                                          "username": "outsider", "role": "developer"})
    assert r.status_code == 201, r.text
    r = plead.post("/api/members/", json={"organization": "alpha-org", "project": world.a.other_project.pk,
                                          "username": "beta-guest", "role": "guest"})
    assert r.status_code == 400  # a project they cannot see does not exist for them


def test_adding_a_member_defaults_to_guest(live, world):
    r = as_(live, world, "a", "owner").post("/api/members/", json={"organization": "alpha-org",
                                                                    "username": "outsider"})
    assert r.status_code == 201 and r.json()["role"] == "guest", r.text


def test_the_last_owner_stays(live, world):
    owner_member = _member(world, world.a.users["owner"])
    owner = as_(live, world, "a", "owner")
    assert owner.patch(f"/api/members/{owner_member.pk}/", json={"role": "lead"}).status_code == 403
    staff = http(live, world.token(world.staff))
    r = staff.delete(f"/api/members/{owner_member.pk}/")
    assert r.status_code == 400 and "at least one owner" in r.text
    r = owner.delete(f"/api/members/{owner_member.pk}/")  # leaving, as the last owner
    assert r.status_code == 400
    # With a second owner, the first may leave.
    second = owner.post("/api/members/", json={"organization": "alpha-org", "username": "outsider",
                                               "role": "owner"})
    assert second.status_code == 201
    assert owner.delete(f"/api/members/{owner_member.pk}/").status_code == 204


@pytest.mark.parametrize("page_role", ["lead"])
def test_the_members_page_refuses_the_same_grants(live, world, page_role):
    from tests.security.conftest import login

    session = login(live, f"alpha-{page_role}")
    r = session.post("/orgs/alpha-org/members/", data={"username": "outsider", "role": "owner"})
    from apps.projects.models import Member

    assert not Member.objects.filter(user=world.outsider).exists(), r.status_code


def test_a_grant_in_use_cannot_be_withdrawn(live, world):
    from django.core.exceptions import ValidationError

    from apps.clusters import services as cluster_services
    from apps.projects import services as project_services

    staff, owner = world.staff, world.a.users["owner"]
    shared = cluster_services.register_cluster(staff, name="shared-x", kubeconfig=kubeconfig(),
                                               granted_to=[world.a.org], check=False)
    ws = world.a.project.workspaces.get(kind="TEST")
    project_services.update_workspace(owner, ws, cluster=shared)
    with pytest.raises(ValidationError, match="still bound"):
        cluster_services.update_cluster(staff, shared, granted_to=[world.b.org], check=False)
    assert list(shared.granted_to.all()) == [world.a.org]
    project_services.update_workspace(owner, ws, cluster=shared.__class__.local())
    cluster_services.update_cluster(staff, shared, granted_to=[world.b.org], check=False)
    assert list(shared.granted_to.all()) == [world.b.org]
