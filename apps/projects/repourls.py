"""Which git repositories the console clones for an application (`repo_url`): https, ssh and git
URLs of public hosts. Checked when the URL is saved and again, resolving the host, right before
each clone, which is then pinned to the checked address and may not be redirected elsewhere.

Settings (both off by default):
- DICE_REPO_ALLOW_PRIVATE_HOSTS: also hosts on loopback, link-local and private addresses (a
  console whose git server is on its own network).
- DICE_REPO_ALLOW_LOCAL_PATHS: also file:// URLs and paths on the console's machine (a
  single-user standalone console; never on a shared one: any tenant could clone any folder the
  console can read).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

from dice_console.addresses import why_not_public

ALLOW_PRIVATE = "DICE_REPO_ALLOW_PRIVATE_HOSTS"
ALLOW_LOCAL = "DICE_REPO_ALLOW_LOCAL_PATHS"
SCHEMES = ("https", "ssh", "git")
DEFAULT_PORTS = {"https": 443, "ssh": 22, "git": 9418}
# scp-like ssh: [user@]host:path (no scheme, the colon before any slash)
_SCP = re.compile(r"^(?:(?P<user>[^@/\s]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^:/\s\[\]]+):(?P<path>(?!//).*)$")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$")


class RepoUrlRefused(ValueError):
    """The URL may not be cloned; the message says why and which setting would allow it."""


@dataclass
class RepoTarget:
    """What a checked URL points at."""

    url: str
    scheme: str  # https, ssh, git, or "file" for a local path (allowed by the setting)
    host: str = ""
    port: int = 0
    addresses: list[str] = field(default_factory=list)  # resolved and checked (empty: not resolved)


def _flag(name: str) -> bool:
    return bool(getattr(settings, name, False))


def _refuse_private(url: str, host: str, address: str, why: str) -> RepoUrlRefused:
    where = host if host == address else f"{host} ({address})"
    return RepoUrlRefused(
        f"{url}: {where} is {why}; the console clones from public hosts only "
        f"(set {ALLOW_PRIVATE}=1 to allow loopback, link-local and private addresses)")


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (OSError when it does not)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({info[4][0] for info in infos})


def check(url: str, *, must_resolve: bool, allow_private: bool | None = None,
          allow_local: bool | None = None) -> RepoTarget:
    """The URL's target when it may be cloned, else RepoUrlRefused. With must_resolve (right before
    a clone) a host that does not resolve is refused; when saving, it is accepted as it is."""
    allow_private = _flag(ALLOW_PRIVATE) if allow_private is None else allow_private
    allow_local = _flag(ALLOW_LOCAL) if allow_local is None else allow_local
    text = url.strip()
    if not text:
        raise RepoUrlRefused("the repository URL is empty")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text) or text.startswith("-"):
        raise RepoUrlRefused(f"{text!r} is not a repository URL (spaces, control characters or a leading '-')")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if "://" not in text:
        scp = _SCP.match(text)
        if scp and not text.startswith(("/", ".", "~")) and "::" not in text:
            host = scp.group("host").strip("[]")
            return _check_host(text, "ssh", host, 22, must_resolve, allow_private)
        return _local(text, allow_local)
    if scheme == "file":
        return _local(text, allow_local)
    if scheme not in SCHEMES:
        raise RepoUrlRefused(f"{text}: {scheme or 'this'}:// URLs are not cloned; use https://, ssh:// or git://"
                             + (" (plain http is not accepted: use https)" if scheme == "http" else ""))
    try:
        host, port = parts.hostname or "", parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise RepoUrlRefused(f"{text}: the port is not a number between 1 and 65535") from None
    if not host:
        raise RepoUrlRefused(f"{text}: the URL names no host")
    return _check_host(text, scheme, host, port, must_resolve, allow_private)


def _local(text: str, allow_local: bool) -> RepoTarget:
    if not allow_local:
        raise RepoUrlRefused(
            f"{text}: local paths and file:// URLs are not cloned (they read the console's own disk); "
            f"use an https://, ssh:// or git:// URL (or set {ALLOW_LOCAL}=1 on a single-user console)")
    return RepoTarget(url=text, scheme="file")


def _check_host(text: str, scheme: str, host: str, port: int, must_resolve: bool, allow_private: bool) -> RepoTarget:
    host = host.rstrip(".").lower()
    try:
        literal = str(ipaddress.ip_address(host))
    except ValueError:
        literal = None
        if not _HOST.match(host):
            raise RepoUrlRefused(f"{text}: {host!r} is not a host name") from None
    target = RepoTarget(url=text, scheme=scheme, host=host, port=port)
    if allow_private:
        return target
    if literal is None and (host == "localhost" or host.endswith(".localhost")):
        raise _refuse_private(text, host, host, "a loopback name")
    try:
        addresses = [literal] if literal else resolve(host, port)
    except OSError:
        if must_resolve:
            raise RepoUrlRefused(f"{text}: cannot resolve {host}") from None
        return target  # saved as given: checked again, resolved, before every clone
    for address in addresses:
        why = why_not_public(address)
        if why:
            raise _refuse_private(text, host, address, why)
    target.addresses = addresses
    return target


def validate(url: str) -> None:
    """For services: a ValidationError on `repo_url` when the URL may not be cloned."""
    if not url or not url.strip():
        return
    try:
        check(url, must_resolve=False)
    except RepoUrlRefused as exc:
        raise ValidationError({"repo_url": str(exc)}) from None


def clone_command(target: RepoTarget, into: str) -> tuple[list[str], dict[str, str]]:
    """`git clone` of a checked target: only its transport allowed, no redirect, and the host
    pinned to the addresses just checked (https through curl's resolve list; ssh by connecting to
    the address; git:// by naming it), so a second DNS answer cannot send it elsewhere."""
    config = ["-c", "protocol.allow=never", "-c", f"protocol.{target.scheme}.allow=always",
              "-c", "http.followRedirects=false", "-c", "core.askPass=true"]
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": target.scheme}
    url = target.url
    if target.addresses:
        address = target.addresses[0]
        if target.scheme == "https":
            pins = ",".join(f"[{a}]" if ":" in a else a for a in target.addresses)
            config += ["-c", f"http.curloptResolve={target.host}:{target.port}:{pins}"]
        elif target.scheme == "ssh":
            env["GIT_SSH_COMMAND"] = f"ssh -o HostName={address} -o HostKeyAlias={target.host} -o BatchMode=yes"
        elif target.scheme == "git":
            parts = urlsplit(url)
            netloc = f"[{address}]" if ":" in address else address
            url = parts._replace(netloc=f"{netloc}:{target.port}").geturl()
    return ["git", *config, "clone", "--quiet", "--depth", "1", "--", url, into], env
