"""Reading uploaded kubeconfigs: list contexts, validate one, and reduce the file to it.

Free of Django: errors are KubeconfigError with a message that names the place.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import yaml

from speckit.errors import SpecInvalid
from speckit.yamlload import load_yaml

MAX_BYTES = 256 * 1024
# Keys that point at files on the uploader's machine, which the console cannot read.
_FILE_KEYS = {
    "certificate-authority": "certificate-authority-data",
    "client-certificate": "client-certificate-data",
    "client-key": "client-key-data",
    "tokenFile": "token",
}


class KubeconfigError(ValueError):
    """A kubeconfig the console cannot use; the message says why and where."""


@dataclass(frozen=True)
class Resolved:
    """One context of a kubeconfig, checked: where it points and how it authenticates."""

    context: str
    server: str
    auth: str  # "token", "client-certificate" or "basic"
    text: str  # a kubeconfig holding only this context, its cluster and its user


def parse(text: str | bytes) -> dict:
    try:
        doc, _ = load_yaml(text, source="kubeconfig", max_bytes=MAX_BYTES)
    except SpecInvalid as exc:
        raise KubeconfigError(f"the kubeconfig is not valid YAML: {exc}") from None
    for key in ("clusters", "contexts", "users"):
        value = doc.get(key)
        if not isinstance(value, list) or not value:
            raise KubeconfigError(f"the kubeconfig has no {key!r} list: is this a kubeconfig file?")
    return doc


def contexts(doc: dict) -> list[str]:
    return [c.get("name", "") for c in doc.get("contexts") or [] if isinstance(c, dict) and c.get("name")]


def _named(doc: dict, section: str, name: str) -> tuple[int, dict]:
    for i, entry in enumerate(doc.get(section) or []):
        if isinstance(entry, dict) and entry.get("name") == name:
            body = entry.get(section[:-1])
            if not isinstance(body, dict):
                raise KubeconfigError(f"{section}[{i}] ({name}) has no {section[:-1]!r} mapping")
            return i, body
    raise KubeconfigError(f"the kubeconfig has no {section[:-1]} named {name!r}")


def _check_files(where: str, body: dict) -> None:
    for key, data_key in _FILE_KEYS.items():
        if body.get(key) and not body.get(data_key):
            raise KubeconfigError(
                f"{where}.{key} refers to a file on your machine; embed it instead "
                f"(kubectl config view --raw --flatten --minify)"
            )


def _check_b64(where: str, value) -> None:
    try:
        base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise KubeconfigError(f"{where} is not valid base64") from None


def resolve(doc: dict, context: str | None = None) -> Resolved:
    """Check the chosen context (default: current-context) and reduce the file to it."""
    names = contexts(doc)
    chosen = context or doc.get("current-context") or (names[0] if len(names) == 1 else "")
    if not chosen:
        raise KubeconfigError(f"choose a context; the kubeconfig has: {', '.join(names) or 'none'}")
    if chosen not in names:
        raise KubeconfigError(f"no context {chosen!r} in the kubeconfig; it has: {', '.join(names) or 'none'}")
    ci, ctx = _named(doc, "contexts", chosen)
    for key in ("cluster", "user"):
        if not ctx.get(key):
            raise KubeconfigError(f"contexts[{ci}] ({chosen}) names no {key}")
    ki, cluster = _named(doc, "clusters", ctx["cluster"])
    where = f"clusters[{ki}].cluster"
    server = str(cluster.get("server") or "")
    if not server.startswith(("https://", "http://")):
        raise KubeconfigError(f"{where}.server is missing or not an http(s) URL")
    _check_files(where, cluster)
    if cluster.get("certificate-authority-data"):
        _check_b64(f"{where}.certificate-authority-data", cluster["certificate-authority-data"])
    ui, user = _named(doc, "users", ctx["user"])
    where = f"users[{ui}].user"
    _check_files(where, user)
    if user.get("exec") or user.get("auth-provider"):
        raise KubeconfigError(
            f"{where} authenticates through a command or auth provider the console cannot run; "
            "use a ServiceAccount token or a client certificate"
        )
    if user.get("token"):
        auth = "token"
    elif user.get("client-certificate-data") and user.get("client-key-data"):
        for key in ("client-certificate-data", "client-key-data"):
            _check_b64(f"{where}.{key}", user[key])
        auth = "client-certificate"
    elif user.get("username") and user.get("password"):
        auth = "basic"
    else:
        raise KubeconfigError(f"{where} has no credentials (token, or client-certificate-data and client-key-data)")
    minimal = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": ctx["cluster"], "cluster": cluster}],
        "users": [{"name": ctx["user"], "user": user}],
        "contexts": [{"name": chosen, "context": ctx}],
        "current-context": chosen,
    }
    return Resolved(chosen, server, auth, yaml.safe_dump(minimal, sort_keys=False))


def from_token(server: str, ca_pem: str, token: str, name: str = "dice") -> Resolved:
    """A kubeconfig for API server URL + CA certificate (PEM) + bearer token."""
    if not server.startswith(("https://", "http://")):
        raise KubeconfigError("server must be an http(s) URL")
    token = token.strip()
    if not token:
        raise KubeconfigError("token is empty")
    cluster: dict = {"server": server}
    if ca_pem.strip():
        if "-----BEGIN CERTIFICATE-----" not in ca_pem:
            raise KubeconfigError("the CA certificate must be PEM (-----BEGIN CERTIFICATE-----)")
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem.strip().encode() + b"\n").decode()
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
    return resolve(doc, name)
