"""Item 6 (sign-in): throttling by user and by address with django-axes, the lockout in the admin
and the audit log, and password checks that do not hold the thread serving other requests."""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.security.conftest import PASSWORD, Http, http, login

LIMIT = 10


@pytest.fixture
def behind_proxy(settings):
    """Clients are told apart by X-Forwarded-For, as behind one trusted proxy."""
    settings.DICE_TRUSTED_PROXY_COUNT = 1
    settings.AXES_FAILURE_LIMIT = LIMIT


def attempt(live, username, password, address, timeout: float = 30):
    client = Http(live.url)
    client.headers["X-Forwarded-For"] = address
    client.get("/login/")
    return client.post("/login/", data={"username": username, "password": password}, timeout=timeout)


def test_wrong_passwords_lock_the_user_out_from_every_address(live, world, behind_proxy):
    for i in range(LIMIT - 1):
        r = attempt(live, "alpha-guest", "wrong", f"10.0.0.{i + 1}")
        assert r.status_code == 200, (i, r.status_code)  # the form again, with its error
    assert attempt(live, "alpha-guest", "wrong", "10.0.0.99").status_code == 429  # the LIMIT-th locks
    r = attempt(live, "alpha-guest", PASSWORD, "10.0.1.1")  # right password, fresh address
    assert r.status_code == 429, r.status_code
    assert attempt(live, "alpha-lead", PASSWORD, "10.0.1.1").status_code == 302  # others are not affected
    from apps.projects.models import AuditEvent

    lockouts = AuditEvent.objects.filter(action="lockout")
    assert lockouts.exists() and {e.after["username"] for e in lockouts} == {"alpha-guest"}
    # Staff see it in the audit log and in the admin; members of the user's organization do not.
    staff = login(live, "staff")
    assert "alpha-guest" in staff.get("/admin/axes/accessattempt/").text
    events = http(live, world.token(world.staff)).get("/api/audit-events/", params={"action": "lockout"}).json()
    assert any(e["action"] == "lockout" and e["object_repr"] == "alpha-guest" for e in events["results"])
    owner_events = http(live, world.token(world.a.users["owner"])).get("/api/audit-events/").json()["results"]
    assert not any(e["action"] == "lockout" for e in owner_events)


def test_many_users_tried_from_one_address_lock_the_address(live, world, behind_proxy):
    for i in range(LIMIT - 1):
        assert attempt(live, f"guess-{i}", "wrong", "192.0.2.7").status_code == 200
    assert attempt(live, "guess-last", "wrong", "192.0.2.7").status_code == 429
    assert attempt(live, "alpha-owner", PASSWORD, "192.0.2.7").status_code == 429
    assert attempt(live, "alpha-owner", PASSWORD, "192.0.2.8").status_code == 302


def test_a_success_before_the_limit_resets_the_count(live, world, behind_proxy):
    for i in range(LIMIT - 1):
        attempt(live, "beta-guest", "wrong", f"10.1.0.{i + 1}")
    assert attempt(live, "beta-guest", PASSWORD, "10.1.1.1").status_code == 302
    for i in range(LIMIT - 1):
        attempt(live, "beta-guest", "wrong", f"10.2.0.{i + 1}")
    assert attempt(live, "beta-guest", PASSWORD, "10.2.1.1").status_code == 302


def _latencies(client, path, stop: threading.Event, out: list) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        assert client.get(path).status_code == 200
        out.append(time.perf_counter() - started)


def test_password_checks_do_not_hold_other_requests(live, world, behind_proxy, settings):
    """80 bad sign-ins at concurrency 40, each from its own address (so every one is hashed), while
    the API is timed: its median stays near the idle median."""
    from tests import hashers

    settings.PASSWORD_HASHERS = hashers.PRODUCTION_HASHERS  # what a sign-in really costs
    settings.AXES_FAILURE_LIMIT = 1000
    api = http(live, world.token(world.a.users["guest"]))
    for _ in range(5):
        api.get("/api/me/")
    idle = []
    for _ in range(30):
        started = time.perf_counter()
        api.get("/api/me/")
        idle.append(time.perf_counter() - started)
    stop, busy = threading.Event(), []
    timer = threading.Thread(target=_latencies, args=(api, "/api/me/", stop, busy))
    timer.start()
    started = time.perf_counter()
    with ThreadPoolExecutor(40) as pool:
        # The sign-ins queue for the login threads (DICE_LOGIN_THREADS): they may take minutes here.
        codes = list(pool.map(lambda i: attempt(live, f"nobody-{i}", "wrong", f"203.0.113.{i}",
                                                timeout=600).status_code, range(80)))
    burst = time.perf_counter() - started
    stop.set()
    timer.join()
    assert codes == [200] * 80
    idle_p50, busy_p50 = statistics.median(idle), statistics.median(busy)
    print(f"\nAPI /api/me/ p50 idle {idle_p50 * 1000:.1f} ms, during 80 bad sign-ins at concurrency 40 "
          f"{busy_p50 * 1000:.1f} ms ({len(busy)} requests; the burst took {burst:.1f} s)")
    assert busy_p50 < 3 * idle_p50 + 0.1, (idle_p50, busy_p50)
