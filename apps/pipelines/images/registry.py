"""A client of the distribution (Docker Registry v2) API: blobs and manifests, monolithic uploads.
Enough to pull a base image's manifest, config and layers and to push a built image."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from urllib.parse import urljoin

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT = ", ".join((OCI_MANIFEST, DOCKER_MANIFEST))
TIMEOUT = 120


class RegistryError(Exception):
    """The registry refused or could not be reached; the message says which request."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a blob store's redirect is followed by hand, below
        return None


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Registry:
    """One registry, by its base URL (http://host:port for a plain-HTTP one)."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.host = self.base.split("://", 1)[-1]
        self._opener = urllib.request.build_opener(_NoRedirect)

    def _call(self, method: str, path: str, *, data: bytes | None = None, headers: dict | None = None):
        url = path if path.startswith("http") else f"{self.base}{path}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        try:
            return self._opener.open(request, timeout=TIMEOUT)
        except urllib.error.HTTPError as exc:
            if exc.code in (301, 302, 307) and exc.headers.get("Location"):
                return self._call(method, urljoin(url, exc.headers["Location"]), data=data, headers=headers)
            if exc.code == 404:
                raise
            body = exc.read()[:300].decode(errors="replace")
            raise RegistryError(f"{method} {url}: {exc.code} {body}") from None
        except OSError as exc:
            raise RegistryError(f"{method} {url}: {exc}") from None

    def has_blob(self, name: str, digest: str) -> bool:
        try:
            self._call("HEAD", f"/v2/{name}/blobs/{digest}").close()
            return True
        except urllib.error.HTTPError:
            return False

    def push_blob(self, name: str, data: bytes, digest: str | None = None) -> str:
        digest = digest or digest_of(data)
        if self.has_blob(name, digest):
            return digest
        self._upload(self._start_upload(name), digest, data)
        return digest

    def copy_blob(self, source: str, name: str, digest: str) -> str:
        """A blob of repository `source` made a blob of `name`: mounted across repositories when
        the registry can (nothing travels: a base's layer is hundreds of MiB), else downloaded,
        checked and uploaded."""
        if self.has_blob(name, digest):
            return digest
        with self._call("POST", f"/v2/{name}/blobs/uploads/?mount={digest}&from={source}", data=b"") as answer:
            if answer.status == 201:
                return digest
            location = answer.headers["Location"]
        self._upload(location, digest, self.blob(source, digest))
        return digest

    def push_blob_stream(self, name: str, stream, size: int, digest: str) -> str:
        """A blob read from `stream` (`size` bytes, whose digest the registry checks), without
        holding it in memory: a base image's layer is hundreds of MiB."""
        if self.has_blob(name, digest):
            return digest
        self._upload(self._start_upload(name), digest, stream, {"Content-Length": str(size)})
        return digest

    def _start_upload(self, name: str) -> str:
        """A new upload session of repository `name`: where its data goes."""
        with self._call("POST", f"/v2/{name}/blobs/uploads/", data=b"") as answer:
            return answer.headers["Location"]

    def _upload(self, location: str, digest: str, data, headers: dict | None = None) -> None:
        """The whole blob in one PUT to the upload session at `location`, which the registry
        checks against `digest`."""
        separator = "&" if "?" in location else "?"
        upload = urljoin(f"{self.base}/", location) + f"{separator}digest={digest}"
        self._call("PUT", upload, data=data,
                   headers={"Content-Type": "application/octet-stream", **(headers or {})}).close()

    def blob(self, name: str, digest: str) -> bytes:
        try:
            with self._call("GET", f"/v2/{name}/blobs/{digest}") as answer:
                data = answer.read()
        except urllib.error.HTTPError:
            raise RegistryError(f"{self.host}/{name}: no blob {digest}") from None
        if digest_of(data) != digest:
            raise RegistryError(f"{self.host}/{name}: blob {digest} does not match its digest")
        return data

    def manifest(self, name: str, reference: str) -> tuple[dict, str]:
        try:
            with self._call("GET", f"/v2/{name}/manifests/{reference}", headers={"Accept": ACCEPT}) as answer:
                data = answer.read()
        except urllib.error.HTTPError:
            raise RegistryError(f"{self.host}/{name}:{reference} is not in the registry") from None
        return json.loads(data), digest_of(data)

    def push_manifest(self, name: str, reference: str, manifest: dict) -> str:
        data = json.dumps(manifest, separators=(",", ":")).encode()
        return self.push_manifest_bytes(name, reference, data, manifest.get("mediaType", OCI_MANIFEST))

    def push_manifest_bytes(self, name: str, reference: str, data: bytes, media_type: str) -> str:
        """A manifest as given (its digest unchanged)."""
        self._call("PUT", f"/v2/{name}/manifests/{reference}", data=data, headers={"Content-Type": media_type}).close()
        return digest_of(data)
