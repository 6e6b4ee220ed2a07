"""Shared fixtures of the security suite: the live ASGI server (HTTP and WebSockets), two
organizations with a user for every role, and clients that act as those users over real sockets.

Kept small and stable so other security tests can reuse it:
- `live`: the running server (`live.url`), on the test database (transactional).
- `world`: `world.a` and `world.b` (each an `Org`: `.org`, `.project`, `.app`, `.other_project`,
  `.users[name]`, `.tokens[name]`), `world.staff` (a superuser), `world.outsider` (no membership),
  `world.token(user)`; `world.all_users()` lists (label, user) for sweeps.
- `http(live, token=...)`: a requests.Session bound to the server with a bearer token;
  `login(live, username)`: a session signed in through the login page (CSRF handled).
- `ws_connect(live, path, token=... or session=...)`: a websockets sync client.
Organizations and memberships are written to the database directly, so the fixtures do not depend
on who the services let create organizations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import requests

from tests.browser.live_asgi import AsgiServer

PASSWORD = "Correct-horse-42"
ROLES = ("owner", "lead", "developer", "ops", "guest")


@dataclass
class Org:
    """One organization of the security world and its users (org-level, one per role, plus a
    project-level lead and an application-level guest)."""

    prefix: str
    org: object = None
    project: object = None
    other_project: object = None
    app: object = None
    users: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)


class World:
    def __init__(self):
        from django.contrib.auth import get_user_model
        from django.contrib.auth.hashers import make_password

        self.User = get_user_model()
        self.keys: dict[int, str] = {}
        self._hash = make_password(PASSWORD)  # hashed once: every user of the world shares it
        self.staff = self._user("staff", superuser=True)
        self.outsider = self._user("outsider")
        self.a = self._org("alpha")
        self.b = self._org("beta")

    def _user(self, username: str, *, superuser: bool = False):
        from apps.projects import services

        user = self.User.objects.create(username=username, email=f"{username}@example.test", password=self._hash,
                                        is_superuser=superuser, is_staff=superuser)
        _, self.keys[user.pk] = services.create_token(user, name="security-tests")
        return user

    def _org(self, prefix: str) -> Org:
        from apps.projects import services
        from apps.projects.models import Member, Organization

        o = Org(prefix)
        o.org = Organization.objects.create(slug=f"{prefix}-org", name=f"{prefix} org")
        for role in ROLES:
            user = o.users[role] = self._user(f"{prefix}-{role}")
            Member.objects.create(user=user, organization=o.org, role=role)
        owner = o.users["owner"]
        o.project = services.create_project(owner, o.org, slug=f"{prefix}-proj")
        o.other_project = services.create_project(owner, o.org, slug=f"{prefix}-hidden")
        o.app = services.create_application(owner, o.project, slug=f"{prefix}-app", repo_url="https://git.example/a")
        lead = o.users["proj-lead"] = self._user(f"{prefix}-proj-lead")
        Member.objects.create(user=lead, organization=o.org, project=o.project, role="lead")
        guest = o.users["app-guest"] = self._user(f"{prefix}-app-guest")
        Member.objects.create(user=guest, organization=o.org, project=o.project, application=o.app, role="guest")
        o.tokens = {name: self.keys[u.pk] for name, u in o.users.items()}
        return o

    def token(self, user) -> str:
        return self.keys[user.pk]

    def all_users(self) -> list[tuple[str, object]]:
        out = [("staff", self.staff), ("outsider", self.outsider)]
        for o in (self.a, self.b):
            out += [(f"{o.prefix}:{name}", user) for name, user in o.users.items()]
        return out


@pytest.fixture
def live(transactional_db):
    server = AsgiServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def world(transactional_db):
    return World()


class Http(requests.Session):
    """A session whose paths are relative to the live server; never raises on an HTTP status."""

    def __init__(self, base: str):
        super().__init__()
        self.base = base.rstrip("/")

    def request(self, method, url, *args, **kwargs):
        if url.startswith("/"):
            url = self.base + url
        kwargs.setdefault("timeout", 30)
        kwargs.setdefault("allow_redirects", False)
        if method.upper() not in ("GET", "HEAD", "OPTIONS") and "csrftoken" in self.cookies:
            headers = dict(kwargs.pop("headers", None) or {})
            headers.setdefault("X-CSRFToken", self.cookies["csrftoken"])
            headers.setdefault("Referer", self.base + "/")
            kwargs["headers"] = headers
        return super().request(method, url, *args, **kwargs)


def http(server, token: str | None = None) -> Http:
    client = Http(server.url)
    if token:
        client.headers["Authorization"] = f"Bearer {token}"
    return client


def login(server, username: str, password: str = PASSWORD) -> Http:
    """A browser-like session signed in through /login/; raises if the login is refused."""
    client = Http(server.url)
    client.get("/login/")
    response = client.post("/login/", data={"username": username, "password": password})
    if response.status_code != 302:
        raise AssertionError(f"login of {username} refused: {response.status_code}")
    return client


def login_attempt(server, username: str, password: str, *, client: Http | None = None):
    """One POST to the login page (a fresh session unless given); returns the response."""
    client = client or Http(server.url)
    if "csrftoken" not in client.cookies:
        client.get("/login/")
    return client.post("/login/", data={"username": username, "password": password})


def ws_connect(server, path: str, *, token: str | None = None, session: Http | None = None, **kwargs):
    """A WebSocket to the live server, as a token's user or a signed-in session's."""
    from websockets.sync.client import connect

    headers = {"Origin": server.url}
    if session is not None:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
    if token:
        headers["Authorization"] = f"Bearer {token}"
    kwargs.setdefault("open_timeout", 10)
    return connect(f"ws://127.0.0.1:{server.port}{path}", additional_headers=headers, **kwargs)
