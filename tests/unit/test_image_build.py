"""Daemonless image builds against a real registry (Debian's docker-registry): a base image pushed
FROM scratch, then the guestbook's own Dockerfile built on it, checked by pulling back its
manifest, config and layers; RUN is refused naming its line."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from apps.pipelines.images import oci
from apps.pipelines.images.dockerfile import DockerfileError, parse
from apps.pipelines.images.registry import Registry
from tests.guestbook_helpers import GUESTBOOK
from tests.registry_helpers import registry_url  # noqa: F401


def _reader(files: dict[str, bytes]):
    return lambda rel: (files[rel], 0o644)


def _layer_names(registry: Registry, name: str, layer: dict) -> list[str]:
    data = gzip.decompress(registry.blob(name, layer["digest"]))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return sorted(m.name for m in tar.getmembers() if m.isfile())


def test_the_guestbook_dockerfile_builds_on_a_base_from_the_registry(registry_url):  # noqa: F811
    registry = Registry(registry_url)
    base_files = {"bin/python3": b"#!/bin/sh\n"}
    base = oci.build('FROM scratch\nCOPY bin/ /usr/bin/\nENV PATH=/usr/bin LANG=C.UTF-8\nCMD ["sh"]\n',
                     list(base_files), _reader(base_files), registry, "library/python", "3.11-slim")
    assert base.layers == 1

    files = {p.name: p.read_bytes() for p in GUESTBOOK.iterdir() if p.is_file()}
    built = oci.build((GUESTBOOK / "Dockerfile").read_text(), sorted(files), _reader(files), registry,
                      "acme/shop/guestbook", "run-1")
    manifest, digest = registry.manifest("acme/shop/guestbook", "run-1")
    assert digest == built.digest and len(manifest["layers"]) == 2
    config = json.loads(registry.blob("acme/shop/guestbook", manifest["config"]["digest"]))["config"]
    assert config["WorkingDir"] == "/app" and config["Cmd"] == ["python3", "front.py"]
    assert {"PATH=/usr/bin", "LANG=C.UTF-8", "PYTHONUNBUFFERED=1"} <= set(config["Env"])
    assert _layer_names(registry, "acme/shop/guestbook", manifest["layers"][0]) == ["usr/bin/python3"]
    assert _layer_names(registry, "acme/shop/guestbook", manifest["layers"][1]) == [
        "app/api.py", "app/front.py", "app/resp.py"]


def test_run_and_unknown_instructions_are_refused_with_their_line():
    with pytest.raises(DockerfileError, match="line 3: RUN needs a container"):
        parse("FROM scratch\n# comment\nRUN apt-get install -y x\n")
    with pytest.raises(DockerfileError, match="exactly one FROM"):
        parse("FROM a\nFROM b\n")
    with pytest.raises(DockerfileError, match="line 2: unknown instruction FOO"):
        parse("FROM a\nFOO bar\n")


def test_a_missing_base_or_source_is_a_clear_error(registry_url):  # noqa: F811
    from apps.pipelines.images.registry import RegistryError

    registry = Registry(registry_url)
    with pytest.raises(RegistryError, match="library/nope:1 is not in the registry"):
        oci.build("FROM nope:1\n", [], _reader({}), registry, "x/y", "1")
    with pytest.raises(DockerfileError, match="line 2: missing.txt matches no file"):
        oci.build("FROM scratch\nCOPY missing.txt /\n", [], _reader({}), registry, "x/y", "1")
    with pytest.raises(DockerfileError, match="outside the build context"):
        oci.build("FROM scratch\nCOPY ../secret /\n", [], _reader({}), registry, "x/y", "1")


def _oci_archive(path, layer_tar: bytes, config: dict) -> str:
    """An OCI image-layout archive as `ktestenv image` and `ctr images export` write it: one
    uncompressed layer (media type ...layer.v1.tar). Returns the manifest's digest."""
    import hashlib

    def digest(data: bytes) -> str:
        return "sha256:" + hashlib.sha256(data).hexdigest()

    config_blob = json.dumps({**config, "rootfs": {"type": "layers", "diff_ids": [digest(layer_tar)]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": digest(config_blob), "size": len(config_blob)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                       "digest": digest(layer_tar), "size": len(layer_tar)}]}).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(manifest),
         "size": len(manifest)}]}).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index),
                           *((f"blobs/sha256/{digest(b)[7:]}", b) for b in (layer_tar, config_blob, manifest))]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return digest(manifest)


def test_a_base_archive_is_pushed_as_is_and_an_uncompressed_layer_stays_uncompressed(registry_url, tmp_path):  # noqa: F811
    from django.core.management import call_command

    from apps.pipelines.images.archive import ArchiveError, push_archive

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("usr/bin/python3")
        info.size, info.mode = 10, 0o755
        tar.addfile(info, io.BytesIO(b"#!/bin/sh\n"))
    archive = tmp_path / "python.tar"
    manifest_digest = _oci_archive(archive, raw.getvalue(), {"architecture": "amd64", "os": "linux",
                                                             "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["python3"]}})
    out = io.StringIO()
    call_command("push_image", str(archive), "python:3.11-slim", registry=registry_url, stdout=out)
    registry = Registry(registry_url)
    assert f"{registry.host}/library/python:3.11-slim" in out.getvalue()
    manifest, digest = registry.manifest("library/python", "3.11-slim")
    assert digest == manifest_digest  # the manifest as the archive holds it

    files = {p.name: p.read_bytes() for p in GUESTBOOK.iterdir() if p.is_file()}
    built = oci.build((GUESTBOOK / "Dockerfile").read_text(), sorted(files), _reader(files), registry,
                      "acme/shop/guestbook", "run-2")
    layers = registry.manifest("acme/shop/guestbook", "run-2")[0]["layers"]
    # The base's layer is the same bytes under the same (uncompressed) type: calling it gzip would
    # make every runtime fail to unpack it.
    assert layers[0] == {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": manifest["layers"][0]["digest"],
                         "size": manifest["layers"][0]["size"]}
    assert layers[1]["mediaType"] == oci.LAYER and built.layers == 2
    with tarfile.open(fileobj=io.BytesIO(registry.blob("acme/shop/guestbook", layers[0]["digest"]))) as tar:
        assert tar.getnames() == ["usr/bin/python3"]
    # A base's layer is mounted from its repository (nothing travels through the console).
    assert registry.copy_blob("library/python", "elsewhere/app", layers[0]["digest"]) == layers[0]["digest"]
    assert registry.has_blob("elsewhere/app", layers[0]["digest"])

    (tmp_path / "two.tar").write_bytes(b"not a tar")
    with pytest.raises(ArchiveError, match="not a tar archive"):
        push_archive(tmp_path / "two.tar", registry, "x/y", "1")
    with pytest.raises(Exception, match="no registry"):
        call_command("push_image", str(archive), "python:3.11-slim")
