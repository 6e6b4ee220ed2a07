"""From `git push` to a front answering on the real node: the "done when" of hosted repositories
on Kubernetes. Beyond creating the application and a token nothing is configured for the run:
a plain `git push` of the guestbook (with its image pipeline as .dice/pipelines/image.yml) to the
application's hosted repository starts the pipeline; its checkout (a pod) clones the pushed
commit from the console, the test step (a pod) compiles it, `image-build` builds the Dockerfile
and pushes the image to the registry beside the node (ktestenv's docker-registry), `release`
takes that image for front and api, `dice` deploys to DEV (bound to the real-node cluster), the
node's containerd pulls the image over plain HTTP, and the front answers through its Service.

What the test sets up is the platform, not the run: the console reachable at the node's address
(DICE_CONSOLE_URL), the registry (DICE_IMAGE_REGISTRY) holding the base `python:3.11-slim`
(pushed from the node's local image archive with `manage.py push_image`, as an air-gapped site
would seed its mirror), the images steps run in (the node has no Internet: its local git and
python images), a volume for the Redis addon (the node has no provisioner)."""

from __future__ import annotations

import time
import urllib.request

import pytest
from django.core.management import call_command

from apps.logs import store
from tests.guestbook_helpers import GUESTBOOK
from tests.k8s.conftest import BIN_DIR
from tests.pipelines_helpers import engine, wait_until  # noqa: F401
from tests.test_hosted_repos import _work, git

from .conftest import K8sCluster, NodeReachableConsole, bind_dev_to_node, node_tag, node_volume, wait_for

pytestmark = [pytest.mark.k8s, pytest.mark.k8s_real, pytest.mark.django_db(transaction=True)]


def test_a_plain_git_push_builds_the_image_and_the_node_runs_it(engine, tenant_a, k8s_node: K8sCluster,  # noqa: F811
                                                                node_address, node_registry, settings, tmp_path):
    from apps.deploy import deployments
    from apps.deploy.models import Release, Runtime
    from apps.deploy.refs import runtime_ref
    from apps.pipelines.images.registry import Registry
    from apps.pipelines.models import PipelineRun

    registry = Registry(node_registry)
    call_command("push_image", str(BIN_DIR / "images" / "python.tar"), "python:3.11-slim", registry=node_registry)
    console = NodeReachableConsole(node_address)
    settings.DICE_CONSOLE_URL = console.server.url
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, node_address]
    settings.DICE_REPOS_ROOT = str(tmp_path / "repos")
    settings.DICE_DEPLOY_FILES = str(tmp_path / "files")
    settings.DICE_IMAGE_REGISTRY = node_registry
    settings.DICE_PIPELINE_AGENT_IMAGE = "python:3.11-slim"
    settings.DICE_PIPELINE_GIT_IMAGE = "ktestenv.local/git:1"
    settings.DICE_DEPLOY_POLL_INTERVAL = 0.5
    settings.DICE_DEPLOY_TIMEOUT = 300
    cluster = bind_dev_to_node(tenant_a, k8s_node, wildcard_domain="apps.test")
    node_volume(k8s_node, tmp_path / "redis-data", "gp")
    # The wait-for-dependencies init container names Docker Hub's busybox:1.36: the node's local one.
    node_tag("docker.io/library/busybox:stable", "docker.io/library/busybox:1.36")

    files = {p.name: p.read_text() for p in GUESTBOOK.iterdir() if p.is_file() and p.name != "pipeline.yml"}
    files[".dice/pipelines/image.yml"] = files.pop("image-pipeline.yml")
    work = _work(tmp_path, files)
    head = git("rev-parse", "HEAD", cwd=work).stdout.strip()
    path = f"/git/{tenant_a.org.slug}/{tenant_a.project.slug}/{tenant_a.app.slug}.git"
    console.server.start()
    try:
        started = time.monotonic()
        git("push", "-q", f"http://x:{tenant_a.token}@{node_address}:{console.server.port}{path}", "main", cwd=work)
        run = wait_until(lambda: PipelineRun.objects.first(), 30, "the push to start a run")
        run = engine.wait(run, timeout=900)
        tasks = engine.tasks(run)
        logs = {a: [line.text for line in store.read(t.pk)][-15:] for a, t in tasks.items()}
        assert run.status == "success", (run.reason, {a: (t.status, t.reason) for a, t in tasks.items()}, logs)
        assert tasks["checkout"].outputs["commit"] == head
        assert tasks["checkout"].cluster == tasks["test"].cluster == cluster.name  # the steps ran as pods

        image, digest = tasks["image"].outputs["image"], tasks["image"].outputs["digest"]
        assert image == f"{registry.host}/a-org/a-proj/a-app:run-{run.pk}"
        assert registry.manifest("a-org/a-proj/a-app", f"run-{run.pk}")[1] == digest
        release = Release.objects.get(pk=int(tasks["release"].outputs["release_id"]))
        assert release.images == {"front": image, "api": image, "count-entries": image}  # the cron job's too

        runtime = Runtime.objects.get(pk=int(tasks["deploy"].outputs["runtime_id"]))
        ns = runtime_ref(runtime).namespace
        front = k8s_node.core.read_namespaced_service("front", ns)
        page = wait_for(lambda: urllib.request.urlopen(f"http://{front.spec.cluster_ip}:8080/", timeout=5).read(),
                        60, "the front page").decode()
        answered = time.monotonic() - started
        assert "<h1>Dice guestbook</h1>" in page
        # The node pulled the built image from the registry: the running container is that digest.
        pod = k8s_node.core.list_namespaced_pod(ns, label_selector="dice.io/service=front").items[0]
        status = next(c for c in pod.status.container_statuses if c.name == "front")
        assert pod.spec.node_name == "ktestenv-node" and status.image == image, status
        assert status.image_id == f"{registry.host}/a-org/a-proj/a-app@{digest}", status.image_id
        build = (tasks["image"].finished - tasks["image"].started).total_seconds()
        print(f"\npush to answering front on the real node: {answered:.1f}s; guestbook image build: {build:.2f}s "
              f"({tasks['image'].outputs['image']})")
    finally:
        # Whatever the run deployed goes, even when an assertion stopped the test first.
        for left in Runtime.objects.filter(application=tenant_a.app):
            deployments.delete_runtime(tenant_a.owner, left)
        console.server.stop()
