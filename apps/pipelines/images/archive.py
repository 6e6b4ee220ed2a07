"""Push an OCI image-layout archive (a tar holding `oci-layout`, `index.json` and
`blobs/sha256/...`, what `ctr images export` and `ktestenv image` write) into a registry: how a
console without a Docker daemon or Internet access gets the bases its Dockerfiles name
(`FROM python:3.11-slim` is `library/python:3.11-slim` in DICE_IMAGE_REGISTRY)."""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from apps.pipelines.images.oci import layer_media_type
from apps.pipelines.images.registry import OCI_MANIFEST, Registry, digest_of

MANIFEST_TYPES = (OCI_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json")
MAX_JSON_BYTES = 4 * 1024 * 1024


class ArchiveError(ValueError):
    """The file is not a one-image OCI archive this can push; the message says what is wrong."""


@dataclass
class Pushed:
    name: str
    tag: str
    digest: str
    layers: int


def _blob_path(digest: str) -> str:
    algorithm, _, hexa = digest.partition(":")
    if algorithm != "sha256" or len(hexa) != 64 or any(c not in "0123456789abcdef" for c in hexa):
        raise ArchiveError(f"{digest!r} is not a sha256 digest")
    return f"blobs/sha256/{hexa}"


def push_archive(path: Path, registry: Registry, name: str, tag: str) -> Pushed:
    """Push the archive's one image as `name:tag`; its manifest is pushed as it is (same digest)."""
    try:
        tar = tarfile.open(path, mode="r:")  # noqa: SIM115  (closed below)
    except (OSError, tarfile.TarError) as exc:
        raise ArchiveError(f"{path}: not a tar archive ({exc})") from None
    with tar:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}

        def small(member_path: str) -> bytes:
            member = members.get(member_path)
            if member is None:
                raise ArchiveError(f"{path}: no {member_path}")
            if member.size > MAX_JSON_BYTES:
                raise ArchiveError(f"{path}: {member_path} is larger than {MAX_JSON_BYTES} bytes")
            data = tar.extractfile(member).read()
            return data

        try:
            index = json.loads(small("index.json"))
            manifests = index.get("manifests") or []
            if len(manifests) != 1:
                raise ArchiveError(f"{path}: index.json lists {len(manifests)} manifests; push a one-image archive")
            descriptor = manifests[0]
            if descriptor.get("mediaType") not in MANIFEST_TYPES:
                raise ArchiveError(f"{path}: the image is a {descriptor.get('mediaType')}, not one platform's manifest")
            manifest_bytes = small(_blob_path(descriptor["digest"]))
            if digest_of(manifest_bytes) != descriptor["digest"]:
                raise ArchiveError(f"{path}: the manifest does not match its digest")
            manifest = json.loads(manifest_bytes)
        except (ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, ArchiveError):
                raise
            raise ArchiveError(f"{path}: unreadable index or manifest ({exc})") from None
        for layer in manifest.get("layers", []):
            layer_media_type(layer.get("mediaType", ""))  # refuses a layer we could not name
        for blob in [manifest["config"], *manifest.get("layers", [])]:
            member = members.get(_blob_path(blob["digest"]))
            if member is None:
                raise ArchiveError(f"{path}: blob {blob['digest']} is missing")
            registry.push_blob_stream(name, tar.extractfile(member), member.size, blob["digest"])
        digest = registry.push_manifest_bytes(name, tag, manifest_bytes, descriptor["mediaType"])
    return Pushed(name=name, tag=tag, digest=digest, layers=len(manifest.get("layers", [])))
