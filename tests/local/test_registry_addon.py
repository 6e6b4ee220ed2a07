"""The `registry` addon of the local cluster: Debian's docker-registry, run and supervised like
the other addons, reachable by the runtime's services through REGISTRY_URL; an image built by the
daemonless builder is pushed to it and read back."""

from __future__ import annotations

import shutil

import pytest

from apps.pipelines.images import oci
from apps.pipelines.images.registry import Registry
from scheduler.base import Health
from tests.local.conftest import group_of, wait_for

pytestmark = pytest.mark.skipif(shutil.which("docker-registry") is None,
                                reason="docker-registry is not installed (apt-get install docker-registry)")

SPEC = """
version: "2.0"
services:
  web:
    cmd: sleep 600
    resources: {cpu: 0.1, mem: 32}
addons:
  images:
    plan: registry
"""


def test_a_registry_addon_runs_and_takes_an_image(executor, runtime):
    executor.apply(group_of(SPEC, runtime))
    wait_for(lambda: executor.status(runtime).health == Health.HEALTHY, 30, "the runtime to be healthy")
    assert executor.status(runtime).addons["images"].health is Health.HEALTHY
    env = executor._runtime_state(runtime.namespace)["units"]["web"]["env"]
    url = env["REGISTRY_URL"]
    assert url == f"http://127.0.0.1:{env['REGISTRY_PORT']}"
    registry = Registry(url)
    files = {"hello.txt": b"hi\n"}
    built = oci.build("FROM scratch\nCOPY hello.txt /\nCMD [\"cat\", \"/hello.txt\"]\n", list(files),
                      lambda rel: (files[rel], 0o644), registry, "acme/hello", "1")
    manifest, digest = registry.manifest("acme/hello", "1")
    assert digest == built.digest and len(manifest["layers"]) == 1
