"""The console deploying onto a real Kubernetes control plane (tools/ktestenv, kwok nodes): register
the cluster, bind DEV to it, deploy a release with images, follow the Deployment record to healthy,
scale, roll back, delete."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from kubernetes import client as k8s

from apps.clusters import services as clusters
from apps.deploy import deployments
from apps.deploy.models import Deployment, Runtime
from apps.deploy.refs import runtime_ref
from apps.deploy.services import create_release
from apps.deploy.tasks import run_deployment
from apps.projects import services as projects

from .conftest import K8sCluster, wait_for

pytestmark = pytest.mark.k8s

SPEC = """
version: "2.0"
services:
  web:
    image: registry.example/web:1
    ports:
      - port: 8080
        expose: true
    depends_on: [api]
    deployments: {replicas: 2}
    resources: {cpu: 0.2, mem: 64}
  api:
    image: registry.example/api:1
    ports: [9000]
    resources: {cpu: 0.2, mem: 64}
"""


@pytest.fixture
def bound(tenant_a, k8s_cluster: K8sCluster, settings):
    settings.DICE_DEPLOY_POLL_INTERVAL = 0.2
    settings.DICE_DEPLOY_TIMEOUT = 90
    settings.DICE_DEPLOY_DEGRADED_GRACE = 30
    cluster = clusters.register_cluster(
        tenant_a.owner, name=f"kt-{uuid.uuid4().hex[:6]}", kubeconfig=Path(k8s_cluster.kubeconfig).read_text()
    )
    dev = tenant_a.project.workspaces.get(kind="DEV")
    projects.update_workspace(tenant_a.owner, dev, cluster=cluster)
    return cluster


def _deployments_of(api: k8s.AppsV1Api, namespace: str) -> dict[str, int]:
    return {d.metadata.name: d.spec.replicas for d in api.list_namespaced_deployment(namespace).items}


def test_deploy_scale_rollback_delete_on_kubernetes(tenant_a, bound, k8s_cluster: K8sCluster):
    owner = tenant_a.owner
    v1 = create_release(owner, tenant_a.app, spec_text=SPEC)
    d = deployments.deploy(owner, tenant_a.app, "DEV", release=v1, runtime_name="main")
    runtime = d.runtime
    assert runtime.cluster == bound
    assert run_deployment(d.pk)["status"] == "healthy", Deployment.objects.get(pk=d.pk).message
    d.refresh_from_db()
    assert [t.to_status for t in d.transitions.all()] == ["queued", "deploying", "healthy"]
    assert d.progress["order"] == ["api", "web"]
    assert d.progress["services"]["web"]["ready"] == 2

    namespace = runtime_ref(runtime).namespace
    apps_api = k8s.AppsV1Api(k8s_cluster.api_client)
    assert _deployments_of(apps_api, namespace) == {"web": 2, "api": 1}
    body = tenant_a.api().get(f"/api/runtimes/{runtime.pk}/").json()
    assert body["status"]["health"] == "Healthy" and body["cluster"] == bound.name

    deployments.scale(owner, runtime, "api", 3)
    wait_for(lambda: _deployments_of(apps_api, namespace)["api"] == 3, 30, "api scaled to 3")

    v2 = create_release(owner, tenant_a.app, spec_text=SPEC, images={"web": "registry.example/web:2"})
    d2 = deployments.deploy(owner, tenant_a.app, "DEV", release=v2, runtime_name="main")
    assert run_deployment(d2.pk)["status"] == "healthy"
    image = lambda: apps_api.read_namespaced_deployment("web", namespace).spec.template.spec.containers[0].image  # noqa: E731
    assert image() == "registry.example/web:2"
    back = deployments.rollback(owner, Runtime.objects.get(pk=runtime.pk), v1)
    assert back.rollback_of_id == d2.pk
    assert run_deployment(back.pk)["status"] == "healthy"
    assert image() == "registry.example/web:1"

    deployments.delete_runtime(owner, Runtime.objects.get(pk=runtime.pk))
    assert not Runtime.objects.filter(pk=runtime.pk).exists()
    core = k8s.CoreV1Api(k8s_cluster.api_client)

    def gone():
        try:
            ns = core.read_namespace(namespace)
        except k8s.ApiException as exc:
            return exc.status == 404
        return ns.status.phase == "Terminating"

    wait_for(gone, 60, "the runtime's namespace to go")


def test_missing_images_are_refused_before_anything_runs(tenant_a, bound):
    release = create_release(tenant_a.owner, tenant_a.app, spec_text='version: "2.0"\nservices:\n  web:\n    cmd: x\n')
    with pytest.raises(Exception, match="no image for web"):
        deployments.deploy(tenant_a.owner, tenant_a.app, "DEV", release=release)
    assert not Runtime.objects.exists()
