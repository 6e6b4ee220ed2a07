"""dice.yml `deployments.autoscale`: validated with errors naming the place, and rendered as a
HorizontalPodAutoscaler (autoscaling/v2, schema-checked) beside a Deployment that leaves its
replicas to it."""

from __future__ import annotations

import pytest

from diceyml import parse_dice_yml
from scheduler.base import ClusterRef, RuntimeRef, ServiceGroup
from scheduler.kubernetes.render import render_group
from speckit.errors import SpecInvalid
from tests.unit.test_k8s_render_schemas import validate_all

SPEC = """version: "2.0"
services:
  web:
    image: registry.example/web:1
    ports: [8080]
    resources: {cpu: 0.5, mem: 256}
    deployments:
      replicas: 2
      autoscale: {min: 2, max: 6, cpu_percent: 70, mem_percent: 80}
  worker:
    image: registry.example/worker:1
"""


def _spec(autoscale: str):
    return parse_dice_yml('version: "2.0"\nservices:\n  w:\n    image: x\n    deployments:\n'
                          f"      autoscale: {autoscale}\n")


def test_parsed():
    scaling = parse_dice_yml(SPEC).services["web"].deployments.autoscale
    assert (scaling.min, scaling.max, scaling.cpu_percent, scaling.mem_percent) == (2, 6, 70, 80)
    assert scaling.clamp(1) == 2 and scaling.clamp(9) == 6
    assert parse_dice_yml(SPEC).services["worker"].deployments.autoscale is None


@pytest.mark.parametrize("text,message", [
    ("{min: 3, max: 2, cpu_percent: 50}", "max (2) is below min (3)"),
    ("{max: 2}", "give cpu_percent, mem_percent or both"),
    ("{max: 2, cpu_percent: 0}", "cpu_percent"),
    ("{min: 0, max: 2, cpu_percent: 50}", "min"),
    ("{max: 2, cpu: 50}", "unknown key 'cpu'"),
    ("{min: 1, cpu_percent: 50}", "max"),
])
def test_invalid_is_refused_naming_the_place(text, message):
    with pytest.raises(SpecInvalid) as info:
        _spec(text)
    errors = [str(e) for e in info.value.errors]
    assert any("services.w.deployments.autoscale" in e and message in e for e in errors), errors


def test_per_node_cannot_autoscale():
    with pytest.raises(SpecInvalid, match="per_node workload runs one replica per node"):
        parse_dice_yml('version: "2.0"\nservices:\n  w:\n    image: x\n    deployments:\n      workload: per_node\n'
                       "      autoscale: {max: 3, cpu_percent: 50}\n")


def test_rendered_as_hpa():
    runtime = RuntimeRef("acme", "shop", "web", "DEV", "main")
    manifests = render_group(ServiceGroup(runtime, parse_dice_yml(SPEC, workspace="DEV")),
                             ClusterRef("k", "kubernetes", config={}))
    validate_all(manifests)
    kinds = [m["kind"] for m in manifests]
    (hpa,) = [m for m in manifests if m["kind"] == "HorizontalPodAutoscaler"]
    assert kinds.index("HorizontalPodAutoscaler") > kinds.index("Deployment")
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["metadata"]["name"] == "web"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert [(m["resource"]["name"], m["resource"]["target"]["averageUtilization"]) for m in hpa["spec"]["metrics"]] \
        == [("cpu", 70), ("memory", 80)]
    deployments = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "Deployment"}
    assert "replicas" not in deployments["web"]["spec"] and deployments["worker"]["spec"]["replicas"] == 1
