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
