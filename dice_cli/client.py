"""A small REST client for the console, with the stored login and its environment overrides."""

from __future__ import annotations

import json
import os
from pathlib import Path

import requests

from dice_cli.errors import CliError


def config_path() -> Path:
    explicit = os.environ.get("DICE_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "dice" / "config.json"


def load_login() -> dict:
    path = config_path()
    stored = {}
    if path.exists():
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot read {path}: {exc}") from None
    server = os.environ.get("DICE_SERVER") or stored.get("server")
    token = os.environ.get("DICE_TOKEN") or stored.get("token")
    if not server or not token:
        raise CliError("not logged in: run `dice login --server URL --token T` or set DICE_SERVER and DICE_TOKEN")
    return {"server": server.rstrip("/"), "token": token}


def save_login(server: str, token: str) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"server": server.rstrip("/"), "token": token}, indent=2))
    path.chmod(0o600)
    return path


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict):
        if "detail" in body and len(body) == 1:
            return str(body["detail"])
        parts = []
        for key, value in body.items():
            text = "; ".join(str(v) for v in value) if isinstance(value, list) else str(value)
            parts.append(f"{key}: {text}")
        return ", ".join(parts)
    if isinstance(body, list):
        return "; ".join(str(v) for v in body)
    return str(body)


class Client:
    """Calls /api/ with the token; every failure becomes a one-line CliError."""

    def __init__(self, server: str, token: str, timeout: float = 30.0):
        self.server = server.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["Accept"] = "application/json"
        self.timeout = timeout

    @classmethod
    def from_login(cls) -> Client:
        login = load_login()
        return cls(login["server"], login["token"])

    def request(self, method: str, path: str, **kwargs):
        url = f"{self.server}/api/{path.lstrip('/')}"
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise CliError(f"cannot reach {self.server}: {exc.__class__.__name__}") from None
        if response.status_code == 401:
            raise CliError(f"{self.server} refused the token: {_message(response)}")
        if response.status_code == 403:
            raise CliError(f"permission denied: {_message(response)}")
        if response.status_code == 404:
            raise CliError(f"not found: {method} {path}")
        if response.status_code >= 400:
            raise CliError(_message(response))
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, **params):
        return self.request("GET", path, params=params)

    def post(self, path: str, data: dict):
        return self.request("POST", path, json=data)

    def list_all(self, path: str, **params) -> list[dict]:
        """Every item of a paginated list endpoint."""
        items, offset = [], 0
        while True:
            page = self.get(path, limit=200, offset=offset, **params)
            items.extend(page["results"])
            offset += len(page["results"])
            if not page.get("next") or not page["results"]:
                return items


def _multipart(data: dict) -> dict:
    """JSON-shaped fields as form fields: a mapping `images` becomes `images.<key>` fields."""
    fields = {}
    for key, value in data.items():
        if isinstance(value, dict):
            fields.update({f"{key}.{k}": str(v) for k, v in value.items()})
        elif value is not None:
            fields[key] = str(value)
    return fields


def post_spec(client: Client, path: str, data: dict, *, filename: str, timeout: float | None = None,
              archive: bytes | None = None) -> dict | None:
    """POST something that carries a dice.yml (a release, a deployment). Returns the created
    object, or None when the server refused the spec: its errors are printed to stderr as
    `file:line: path: message`, one per line, as `dice spec validate` prints them.

    With `archive` (the spec folder as tar.gz) the request is multipart, the archive sent as the
    file `files`: a file part has no request-body limit short of the server's archive limit."""
    import sys

    from speckit.errors import SpecError
    from speckit.report import render_errors

    try:
        url = f"{client.server}/api/{path.lstrip('/')}"
        if archive is None:
            response = client.session.post(url, json=data, timeout=timeout or client.timeout)
        else:
            response = client.session.post(url, data=_multipart(data), timeout=timeout or client.timeout,
                                           files={"files": ("files.tar.gz", archive, "application/gzip")})
    except requests.RequestException as exc:
        raise CliError(f"cannot reach {client.server}: {exc.__class__.__name__}") from None
    if response.status_code == 400:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if isinstance(body, dict) and body.get("errors"):
            errors = [SpecError(e.get("path", ""), e.get("line"), e.get("message", "")) for e in body["errors"]]
            print(render_errors(errors, filename=filename, fmt="text"), file=sys.stderr)
            return None
    if response.status_code == 401:
        raise CliError(f"{client.server} refused the token: {_message(response)}")
    if response.status_code == 403:
        raise CliError(f"permission denied: {_message(response)}")
    if response.status_code >= 400:
        raise CliError(_message(response))
    return response.json()
