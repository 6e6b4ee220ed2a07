"""Sending a notification to a tenant's URL without letting the URL reach what it must not.

A channel's URL is hostile input: it could name the console's own loopback services (Redis,
PostgreSQL, the API), the cloud's metadata address (169.254.169.254) or the internal network. It is
checked when saved and again right before each send: the host is resolved, every address must be
public, and the connection is made to the address just checked (no second DNS answer can move
it), with a timeout, and no redirect is followed (a 3xx is a failed attempt, its Location unread).

DICE_NOTIFY_ALLOW_PRIVATE_HOSTS=1 (off by default) also allows loopback, link-local and private
addresses: a console whose receivers are on its own network (and the tests' local receiver).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from dice_console.addresses import why_not_public

ALLOW_PRIVATE = "DICE_NOTIFY_ALLOW_PRIVATE_HOSTS"
MAX_URL = 2000
MAX_RESPONSE = 64 * 1024  # what is read of a receiver's answer (kept for the history, trimmed)


class TargetRefused(ValueError):
    """The URL may not be sent to; the message says why (and which setting would allow it)."""


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line


@dataclass(frozen=True)
class Answer:
    status: int
    body: str


def _allow_private() -> bool:
    return bool(getattr(settings, ALLOW_PRIVATE, False))


def parse(url: str) -> Target:
    """The URL's parts when it is an http(s) URL with a host; TargetRefused otherwise."""
    text = (url or "").strip()
    if not text:
        raise TargetRefused("the URL is empty")
    if len(text) > MAX_URL:
        raise TargetRefused(f"the URL is longer than {MAX_URL} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise TargetRefused("the URL contains spaces or control characters")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise TargetRefused(f"{scheme or 'this'}:// URLs are not sent to; use https:// (or http://)")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("the URL may not carry a user name or password; put credentials in its path or query")
    try:
        host, port = (parts.hostname or "").rstrip(".").lower(), parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise TargetRefused("the port is not a number between 1 and 65535") from None
    if not host:
        raise TargetRefused("the URL names no host")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(url=text, scheme=scheme, host=host, port=port, path=path)


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def _refused(target: Target, address: str, why: str) -> TargetRefused:
    where = target.host if target.host == address else f"{target.host} ({address})"
    return TargetRefused(f"{where} is {why}; notifications go to public hosts only "
                         f"(an operator may set {ALLOW_PRIVATE}=1 to allow loopback, link-local and private addresses)")


def check(url: str, *, resolve: bool) -> tuple[Target, list[str]]:
    """The target and the addresses to connect to. Without `resolve` (when saving) a name that
    does not resolve is accepted as it is; with it (before a send) it is refused."""
    target = parse(url)
    literal = _literal(target.host)
    if literal is None and (target.host == "localhost" or target.host.endswith(".localhost")) and not _allow_private():
        raise _refused(target, target.host, "a loopback name")
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            if resolve:
                raise TargetRefused(f"cannot resolve {target.host}") from None
            return target, []
        addresses = sorted({info[4][0] for info in infos})
    if not _allow_private():
        for address in addresses:
            why = why_not_public(address)
            if why:
                raise _refused(target, address, why)
    return target, addresses


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the checked address, whatever the host name resolves to now."""

    def __init__(self, address: str, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, address: str, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float | None = None) -> Answer:
    """POST `body` to the checked, pinned address of `url`. TargetRefused when the URL may not be
    reached; OSError (timeouts included) when the connection fails. Redirects are not followed."""
    target, addresses = check(url, resolve=True)
    timeout = timeout if timeout is not None else float(getattr(settings, "DICE_NOTIFY_TIMEOUT", 10))
    last: OSError | None = None
    for address in addresses[:3]:
        if target.scheme == "https":
            conn: http.client.HTTPConnection = _PinnedHTTPSConnection(
                address, target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        else:
            conn = _PinnedHTTPConnection(address, target.host, target.port, timeout=timeout)
        try:
            conn.request("POST", target.path, body=body, headers={
                "Content-Type": "application/json", "User-Agent": "dice-console-notify/1", **headers})
            response = conn.getresponse()
            text = response.read(MAX_RESPONSE).decode("utf-8", "replace")
            return Answer(status=response.status, body=text)
        except (OSError, http.client.HTTPException) as exc:
            last = exc if isinstance(exc, OSError) else OSError(str(exc) or type(exc).__name__)
        finally:
            conn.close()
    raise last or OSError(f"{target.host} has no address")
