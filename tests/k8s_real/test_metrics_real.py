"""Metrics and autoscaling on the real node, whose cluster serves no resource metrics API
(ktestenv runs no metrics-server): usage comes from the kubelet's summary API through the API
server's node proxy, the capability report says so, and the console's own autoscaler does the
HPA's work (the HPA cannot measure), with cooldowns, events and audit entries."""

from __future__ import annotations

import time
import uuid

import pytest
from kubernetes import client

from apps.clusters import services as clusters
from apps.clusters.services import cluster_executor, cluster_inspector
from apps.deploy import deployments
from apps.deploy.models import Runtime
from apps.deploy.refs import runtime_ref
from apps.deploy.services import create_release
from apps.deploy.tasks import run_deployment
from apps.monitoring import metrics
from apps.monitoring.models import MetricSample, NodeSample
from apps.projects.models import AuditEvent
from scheduler.kubernetes.autoscale import ANNOTATION

from .conftest import NODE_NAME, K8sCluster, bind_dev_to_node, delete_runtimes_on, wait_for

pytestmark = [pytest.mark.k8s, pytest.mark.k8s_real, pytest.mark.django_db(transaction=True)]

# Burns CPU (in the shell, no fork per turn) until BURN_UNTIL (epoch seconds), then sleeps.
# The limit keeps one replica to a fifth of a core on this shared machine.
BURNER = """
version: "2.0"
services:
  burner:
    image: busybox:stable
    cmd: while [ $(date +%s) -lt $BURN_UNTIL ]; do i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; done; exec sleep 100000
    envs: {{BURN_UNTIL: "{until}"}}
    resources: {{cpu: 0.1, max_cpu: 0.2, mem: 32}}
    deployments:
{deployments}
"""


@pytest.fixture
def bound(tenant_a, k8s_node: K8sCluster, settings):
    settings.DICE_DEPLOY_POLL_INTERVAL = 0.5
    settings.DICE_DEPLOY_TIMEOUT = 120
    cluster = bind_dev_to_node(tenant_a, k8s_node)
    yield cluster
    delete_runtimes_on(tenant_a.owner, cluster)


def _deploy(tenant, spec: str) -> Runtime:
    release = create_release(tenant.owner, tenant.app, spec_text=spec)
    d = deployments.deploy(tenant.owner, tenant.app, "DEV", release=release, runtime_name=f"m{uuid.uuid4().hex[:6]}")
    result = run_deployment(d.pk)
    d.refresh_from_db()
    assert result["status"] == "healthy", d.message
    return d.runtime


def test_usage_from_the_kubelet_summary_without_metrics_server(tenant_a, bound):
    report = clusters.run_check(bound)
    assert report["metrics"]["source"] == "kubelet-summary", report["metrics"]
    assert report["features"]["metrics"] is True
    assert "summary" in report["metrics"]["detail"]
    page = tenant_a.browser_client().get(bound.get_absolute_url()).content.decode()
    assert "from the kubelets&#x27; summary API" in page

    runtime = _deploy(tenant_a, BURNER.format(until=int(time.time()) + 600, deployments="      replicas: 1"))

    def burning():
        done = metrics.collect_runtime(runtime)
        assert done["available"], done
        row = MetricSample.objects.filter(runtime=runtime, service="burner", replica="").order_by("-at").first()
        return row if row is not None and (row.cpu_millicores or 0) > 50 else None

    # the kubelet's CPU figure needs two of its housekeeping passes (about 10 s each)
    sample = wait_for(burning, 90, "the burner's CPU use to be measured", interval=2)
    assert sample.memory_bytes and sample.memory_bytes > 0 and sample.replicas == 1
    usage = cluster_executor(bound).usage(runtime_ref(runtime))
    assert usage.source == "kubelet-summary"
    assert [r.replica.startswith("burner-") for r in usage.replicas] == [True]

    # the node, from its kubelet: what the cluster page graphs
    assert metrics.collect_nodes(bound) == 1
    node = NodeSample.objects.get(cluster=bound)
    assert node.node == NODE_NAME and node.cpu_millicores > 0 and node.memory_bytes > 0
    assert cluster_inspector(bound).node_usage()[0].name == NODE_NAME


def test_console_autoscaler_scales_a_deployment_out_and_back_in(tenant_a, bound, k8s_node: K8sCluster, monkeypatch):
    monkeypatch.setenv("DICE_AUTOSCALE_UP_COOLDOWN", "0")
    monkeypatch.setenv("DICE_AUTOSCALE_DOWN_COOLDOWN", "5")
    until = int(time.time()) + 120
    runtime = _deploy(tenant_a, BURNER.format(until=until, deployments=(
        "      autoscale: {min: 1, max: 2, cpu_percent: 50}")))
    ns = runtime_ref(runtime).namespace
    apps = client.AppsV1Api(k8s_node.api_client)
    hpa = client.AutoscalingV2Api(k8s_node.api_client).read_namespaced_horizontal_pod_autoscaler("burner", ns)
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (1, 2)

    def replicas_become(n):
        def check():
            metrics.collect_runtime(runtime)
            return apps.read_namespaced_deployment("burner", ns).spec.replicas == n
        return check

    # out: one replica burns 200m of its 100m request (200%, target 50%): 1 -> 2 (the max)
    wait_for(replicas_become(2), max(30.0, until - time.time() - 10), "the burner to be scaled out to 2",
             interval=2)
    scaled_out = apps.read_namespaced_deployment("burner", ns)
    assert float(scaled_out.metadata.annotations[ANNOTATION]) > 0
    events = [e for e in cluster_executor(bound).events(runtime_ref(runtime)) if e.reason == "Autoscaled"]
    assert events and "burner: 1 -> 2 replicas (cpu" in events[0].message and events[0].object == "Deployment/burner"
    audit = AuditEvent.objects.filter(action="runtime.autoscale", object_id=str(runtime.pk))
    assert audit.count() == 1 and "1 -> 2" in audit.get().after["message"]
    # both replicas really run
    wait_for(lambda: apps.read_namespaced_deployment("burner", ns).status.ready_replicas == 2, 60,
             "the second replica to be ready", interval=1)

    # in: once the burners sleep, use falls to ~0% and after the down cooldown 2 -> 1
    time.sleep(max(0.0, until - time.time()))
    wait_for(replicas_become(1), 120, "the burner to be scaled back in to 1", interval=2)
    messages = sorted(e.after["message"] for e in AuditEvent.objects.filter(
        action="runtime.autoscale", object_id=str(runtime.pk)))
    assert len(messages) == 2 and "2 -> 1" in messages[1] and "1 -> 2" in messages[0]
    # the HPA itself could not act: it says it cannot measure
    hpa = client.AutoscalingV2Api(k8s_node.api_client).read_namespaced_horizontal_pod_autoscaler("burner", ns)
    conditions = {c.type: c for c in hpa.status.conditions or []}
    assert "ScalingActive" not in conditions or conditions["ScalingActive"].status == "False"
