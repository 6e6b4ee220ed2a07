"""Item 7: TLS deployment settings (secure cookies, HSTS, the proxy TLS header, the redirect) and
the Content-Security-Policy header with a fresh nonce on every page. The browser tier checks that the
pages pass the policy (tests/browser/test_csp.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from tests.conftest import ROOT
from tests.security.conftest import http, login

PROBE = r"""
import json, django
django.setup()
from django.conf import settings
from django.test import Client
c = Client()
plain = c.get("/login/")
secure = c.get("/login/", HTTP_X_FORWARDED_PROTO="https")
health = c.get("/healthz/")
print(json.dumps({
    "redirect": [plain.status_code, plain.get("Location", "")],
    "secure_status": secure.status_code,
    "hsts": secure.get("Strict-Transport-Security", ""),
    "csrf_cookie_secure": bool(secure.cookies["csrftoken"]["secure"]) if "csrftoken" in secure.cookies else None,
    "session_cookie_secure": settings.SESSION_COOKIE_SECURE,
    "health": health.status_code,
}))
"""


def _probe(tmp_path, **env) -> dict:
    environ = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    environ.update(DJANGO_SETTINGS_MODULE="dice_console.settings", DICE_DATA_DIR=str(tmp_path), **env)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=environ, check=True)
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=environ, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_tls_behind_a_proxy(tmp_path):
    got = _probe(tmp_path, DICE_TLS="true", DICE_PROXY_TLS_HEADER="X-Forwarded-Proto",
                 DICE_ALLOWED_HOSTS="testserver")
    assert got["redirect"][0] == 301 and got["redirect"][1].startswith("https://"), got
    assert got["secure_status"] == 200
    assert got["hsts"].startswith("max-age=31536000"), got
    assert got["csrf_cookie_secure"] is True and got["session_cookie_secure"] is True
    assert got["health"] == 200  # probes inside the cluster speak plain http


def test_plain_http_by_default(tmp_path):
    got = _probe(tmp_path, DICE_ALLOWED_HOSTS="testserver")
    assert got["redirect"][0] == 200 and got["hsts"] == "" and got["session_cookie_secure"] is False


def test_every_page_carries_a_nonce_policy(live, world):
    session = login(live, "alpha-owner")
    nonces = []
    for path in ("/orgs/", "/orgs/alpha-org/", "/login/", "/api/docs/", "/clusters/local/", "/cmdb/"):
        r = session.get(path)
        assert r.status_code == 200, path
        policy = r.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
        found = re.search(r"'nonce-([^']+)'", policy)  # only in the header of a page that uses it
        nonce = found.group(1) if found else None
        for tag in re.findall(r"<(?:script|style)\b[^>]*>", r.text):
            assert "src=" in tag or (nonce and f'nonce="{nonce}"' in tag), (path, tag, policy)
        if nonce:
            nonces.append(nonce)
    assert nonces and len(set(nonces)) == len(nonces)  # a new nonce for every response
    assert http(live).get("/login/").headers["X-Frame-Options"] == "DENY"
