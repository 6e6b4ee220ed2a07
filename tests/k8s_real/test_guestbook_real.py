"""The guestbook (examples/guestbook) deployed by the console onto the real node: its image built
locally from the python image and the example's files (what its Dockerfile does), the Redis addon
from the locally built redis:7 image on a volume, the front found by the API at its cluster name,
and the front answering HTTP from this machine through its Service (the ClusterIP, routed by
kube-proxy; there is no Ingress controller on the test node)."""

from __future__ import annotations

import time
import urllib.parse
import urllib.request
import uuid

import pytest

from apps.deploy import deployments
from apps.deploy.models import Deployment
from apps.deploy.refs import runtime_ref
from apps.deploy.services import create_release
from apps.deploy.tasks import run_deployment
from tests.k8s.conftest import BIN_DIR

from .conftest import (
    ROOT,
    K8sCluster,
    bind_dev_to_node,
    build_image,
    node_import,
    node_tag,
    node_volume,
    wait_for,
)

pytestmark = [pytest.mark.k8s, pytest.mark.k8s_real, pytest.mark.django_db(transaction=True)]

GUESTBOOK = ROOT / "examples" / "guestbook"
IMAGE = "registry.example.com/dice/guestbook:1.0"


@pytest.fixture
def guestbook_image(k8s_node: K8sCluster, tmp_path) -> str:
    archive = build_image(tmp_path / "guestbook.tar", IMAGE, "--base", str(BIN_DIR / "images" / "python.tar"),
                          "--add", f"{GUESTBOOK}=/app", "--workdir", "/app", "--env", "PYTHONUNBUFFERED=1",
                          "--cmd", "python3 front.py")
    node_import(archive)
    # The console's wait-for-dependencies init container names busybox:1.36 (Docker Hub's); the
    # node has no registry, so the local busybox (Debian's 1.35) answers to that name too.
    node_tag("docker.io/library/busybox:stable", "docker.io/library/busybox:1.36")
    return IMAGE


def test_guestbook_answers_from_the_real_node(tenant_a, k8s_node: K8sCluster, guestbook_image, settings, tmp_path):
    settings.DICE_DEPLOY_POLL_INTERVAL = 0.5
    settings.DICE_DEPLOY_TIMEOUT = 240
    bind_dev_to_node(tenant_a, k8s_node, wildcard_domain="apps.test")
    node_volume(k8s_node, tmp_path / "redis-data", "gb")  # the Redis addon's claim binds to it

    release = create_release(tenant_a.owner, tenant_a.app, spec_text=(GUESTBOOK / "dice.yml").read_text())
    d = deployments.deploy(tenant_a.owner, tenant_a.app, "DEV", release=release,
                           runtime_name=f"gb{uuid.uuid4().hex[:6]}")
    t0 = time.monotonic()
    result = run_deployment(d.pk)
    elapsed = time.monotonic() - t0
    d = Deployment.objects.get(pk=d.pk)
    assert result["status"] == "healthy", d.message
    print(f"\nguestbook on the real node: deploy to healthy in {elapsed:.1f}s")

    ns = runtime_ref(d.runtime).namespace
    front = k8s_node.core.read_namespaced_service("front", ns)
    url = f"http://{front.spec.cluster_ip}:8080"
    page = wait_for(lambda: urllib.request.urlopen(url + "/", timeout=5).read().decode(), 30, "the front page")
    assert "<h1>Dice guestbook</h1>" in page and "0 entries" in page
    text = f"signed on a real node {uuid.uuid4().hex[:6]}"
    form = urllib.parse.urlencode({"text": text}).encode()
    with urllib.request.urlopen(urllib.request.Request(url + "/sign", data=form, method="POST"), timeout=10) as r:
        assert r.status == 200  # after the 303 back to /
        assert text in r.read().decode()
    # The API found Redis by its cluster name and stored the entry there.
    api_pod = k8s_node.core.list_namespaced_pod(ns, label_selector="dice.io/service=api").items[0]
    log = k8s_node.core.read_namespaced_pod_log(api_pod.metadata.name, ns, container="api")
    assert f"redis guestbook-redis.{ns}.svc.cluster.local" in log or "guestbook-redis" in log, log
    deployments.delete_runtime(tenant_a.owner, d.runtime)
