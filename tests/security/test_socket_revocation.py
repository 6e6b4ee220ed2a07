"""Item 5: open WebSockets follow revocation. A removed member's /ws/events/ socket and a revoked
token's socket are closed with 4403 within a second, and receive nothing after the change."""

from __future__ import annotations

import json
import time

from websockets.exceptions import ConnectionClosed

from tests.security.conftest import http, login, ws_connect


def _closed_within(ws, seconds: float) -> tuple[int | None, list]:
    """Read until the socket closes; (close code, messages received) or (None, ...) on timeout."""
    got, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            got.append(json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic()))))
        except TimeoutError:
            break
        except ConnectionClosed as exc:
            return (exc.rcvd.code if exc.rcvd else None), got
    return None, got


def _hello(ws):
    assert json.loads(ws.recv(timeout=10))["type"] == "hello"


def test_a_removed_members_socket_closes_and_stops_receiving(live, world):
    from apps.projects.models import Member

    victim = world.a.users["developer"]
    owner = http(live, world.token(world.a.users["owner"]))
    with ws_connect(live, "/ws/events/", token=world.token(victim)) as by_token, \
            ws_connect(live, "/ws/events/", session=login(live, victim.username)) as by_session:
        _hello(by_token)
        _hello(by_session)
        # Still a member: events arrive.
        owner.patch(f"/api/projects/{world.a.project.pk}/", json={"description": "before"})
        assert json.loads(by_token.recv(timeout=10))["type"] == "audit"
        assert json.loads(by_session.recv(timeout=10))["type"] == "audit"
        member = Member.objects.get(user=victim)
        started = time.monotonic()
        assert owner.delete(f"/api/members/{member.pk}/").status_code == 204
        owner.patch(f"/api/projects/{world.a.project.pk}/", json={"description": "after removal"})
        for ws in (by_token, by_session):
            code, got = _closed_within(ws, 1.5)
            assert code == 4403, (code, got)
            assert not any(m.get("event", {}).get("action") == "update" for m in got), got
        assert time.monotonic() - started < 2.0


def test_a_revoked_tokens_socket_closes(live, world):
    user = world.a.users["guest"]
    key = world.token(user)
    with ws_connect(live, "/ws/events/", token=key) as ws:
        _hello(ws)
        token_id = http(live, key).get("/api/tokens/").json()["results"][0]["id"]
        started = time.monotonic()
        assert http(live, key).delete(f"/api/tokens/{token_id}/").status_code == 204
        code, got = _closed_within(ws, 1.5)
        assert code == 4403, (code, got)
        assert time.monotonic() - started < 1.5
    # And a new socket with it is refused: accepted and closed at once with 4401 (sign in again),
    # before any event (dice_console.wsaccess.refuse).
    with ws_connect(live, "/ws/events/", token=key) as ws:
        code, got = _closed_within(ws, 5)
        assert code == 4401 and not got, (code, got)


def test_events_of_a_project_the_member_cannot_see_are_not_pushed(live, world):
    from apps.projects import services

    guest = world.a.users["app-guest"]
    with ws_connect(live, "/ws/events/", token=world.token(guest)) as ws:
        _hello(ws)
        owner = world.a.users["owner"]
        services.update_project(owner, world.a.other_project, description="not for the guest")
        services.update_application(owner, world.a.app, description="for the guest")
        message = json.loads(ws.recv(timeout=10))
        assert message["event"]["object_repr"] == str(world.a.app), message
