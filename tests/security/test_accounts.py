"""Item 6 (accounts): invitations with a one-time link that sets the password, the users API for
staff (deactivating closes the user's doors, sockets included), and the `dice user` / `dice
member` commands."""

from __future__ import annotations

import json
import re

import pytest
from websockets.exceptions import ConnectionClosed

from tests.security.conftest import Http, http, login, ws_connect


def _accept(live, link: str, password: str):
    path = re.sub(r"^https?://[^/]+", "", link)
    client = Http(live.url)
    page = client.get(path)
    assert page.status_code == 200 and "Choose a password" in page.text
    return client, client.post(path, data={"password1": password, "password2": password})


def test_an_invitation_link_sets_the_password_once(live, world):
    staff = http(live, world.token(world.staff))
    r = staff.post("/api/invitations/", json={"username": "newbie", "email": "newbie@example.test",
                                              "organization": "alpha-org", "role": "developer"})
    assert r.status_code == 201, r.text
    link = r.json()["link"]
    assert "/invite/" in link and "link" not in staff.get(f"/api/invitations/{r.json()['id']}/").json()
    # Before accepting, the account cannot sign in.
    refused = Http(live.url)
    refused.get("/login/")
    assert refused.post("/login/", data={"username": "newbie", "password": ""}).status_code == 200
    client, done = _accept(live, link, "Brand-new-pass-9")
    assert done.status_code == 302
    assert client.get("/orgs/alpha-org/").status_code == 200  # signed in, with the role given
    assert login(live, "newbie", "Brand-new-pass-9").get("/orgs/alpha-org/").status_code == 200
    again = Http(live.url).get(re.sub(r"^https?://[^/]+", "", link))
    assert again.status_code == 410 and "used already" in again.text
    from apps.projects.models import Member

    assert Member.objects.get(user__username="newbie").role == "developer"


def test_who_may_invite(live, world):
    body = {"username": "friend", "organization": "alpha-org", "role": "guest"}
    assert http(live, world.token(world.a.users["lead"])).post("/api/invitations/", json=body).status_code == 403
    assert http(live, world.token(world.b.users["owner"])).post("/api/invitations/", json=body).status_code == 400
    assert http(live, world.token(world.outsider)).post(
        "/api/invitations/", json={"username": "friend"}).status_code == 403
    owner = http(live, world.token(world.a.users["owner"]))
    r = owner.post("/api/invitations/", json=body)
    assert r.status_code == 201, r.text
    assert owner.post("/api/invitations/", json=body).status_code == 400  # the name is taken now
    # beta's owner sees none of alpha's invitations.
    assert http(live, world.token(world.b.users["owner"])).get("/api/invitations/").json()["count"] == 0


def test_the_users_api_is_for_staff_and_deactivation_closes_every_door(live, world):
    for label in ("owner", "lead", "guest"):
        assert http(live, world.token(world.a.users[label])).get("/api/users/").status_code == 403
    staff = http(live, world.token(world.staff))
    users = staff.get("/api/users/", params={"limit": 100}).json()
    assert {"alpha-guest", "beta-owner", "staff"} <= {u["username"] for u in users["results"]}
    victim = world.a.users["guest"]
    key = world.token(victim)
    with ws_connect(live, "/ws/events/", token=key) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        r = staff.patch(f"/api/users/{victim.pk}/", json={"is_active": False})
        assert r.status_code == 200 and r.json()["is_active"] is False
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=1.5)
        assert closed.value.rcvd.code == 4403
    assert http(live, key).get("/api/me/").status_code == 401
    assert staff.patch(f"/api/users/{world.staff.pk}/", json={"is_superuser": False}).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_dice_user_and_member_commands(dice_cli):
    from django.contrib.auth import get_user_model

    from apps.projects.models import Member
    from tests.conftest import make_org

    User = get_user_model()
    staff = User.objects.create_superuser("root-cli", password="pw-long-enough")
    owner = User.objects.create_user("olive")
    org = make_org(owner, "acme")
    from apps.projects import services

    services.create_project(owner, org, slug="shop")
    cli = dice_cli(staff)
    code, out, err = cli("user", "invite", "ivan", "--email", "ivan@example.test", "--org", "acme")
    assert code == 0 and "/invite/" in out, err
    assert Member.objects.get(user__username="ivan").role == "guest"
    code, out, err = cli("member", "set-role", "acme", "ivan", "developer")
    assert code == 0, err
    code, out, _ = cli("member", "list", "acme", "--format", "json")
    assert {(m["username"], m["role"]) for m in json.loads(out)} >= {("olive", "owner"), ("ivan", "developer")}
    code, out, err = cli("member", "add", "acme/shop", "olive", "--role", "lead")
    assert code == 0, err
    assert cli("member", "remove", "acme/shop", "olive")[0] == 0
    code, _, err = cli("member", "remove", "acme", "olive")
    assert code == 1 and "at least one owner" in err  # the last owner stays
    code, out, _ = cli("user", "deactivate", "ivan", "--format", "json")
    assert code == 0 and json.loads(out)["is_active"] is False
    assert cli("user", "list")[0] == 0
    # A non-staff user is refused the users API with one line.
    code, _, err = dice_cli(owner)("user", "list")
    assert code == 1 and "staff" in err


def test_the_users_page_is_for_staff(live, world):
    assert login(live, "alpha-owner").get("/users/").status_code == 403
    staff = login(live, "staff")
    page = staff.get("/users/")
    assert page.status_code == 200 and "alpha-guest" in page.text and "beta-owner" in page.text
    r = staff.post("/users/", data={"username": "pagenew", "email": "p@example.test"})
    assert r.status_code == 302
    assert "/invite/" in staff.get("/users/").text  # the one-time link, in the message
    victim = world.b.users["guest"]
    assert staff.post("/users/", data={"user": victim.pk, "active": "0"}).status_code == 302
    victim.refresh_from_db()
    assert victim.is_active is False
    assert http(live, world.token(victim)).get("/api/me/").status_code == 401
