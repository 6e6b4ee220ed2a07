"""The console's autoscaler of a Kubernetes runtime whose cluster serves no resource metrics API.

A HorizontalPodAutoscaler reads metrics.k8s.io; without metrics-server it never acts (its
ScalingActive condition says FailedGetResourceMetric). Usage is then measured from the kubelets'
summary API (kubernetes/metrics.py), and after each measurement the console does the HPA's work
itself for the HPAs it rendered: the same rule and cooldowns as the local engine
(scheduler/autoscale.py), the Deployment scaled through its scale subresource (as `scale` does, so
the next deploy keeps it), the time of the change kept on the Deployment (annotation
dice.io/autoscaled-at: every console process sees the same cooldown, across restarts), and an
`Autoscaled` Event on the Deployment, which the runtime's events show and the collector copies into
the audit log."""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from scheduler.autoscale import AUTOSCALED, Decision, cooldowns, decide
from scheduler.base import RuntimeRef, RuntimeUsage
from scheduler.kubernetes.meta import MANAGED_BY, SERVICE_LABEL
from scheduler.kubernetes.metrics import KUBELET_SUMMARY, quantity

log = logging.getLogger(__name__)

ANNOTATION = "dice.io/autoscaled-at"
COMPONENT = "dice-autoscaler"


def _requests(deployment) -> tuple[float, float]:
    """(cores, MiB) a pod of the Deployment requests: its containers' requests added up (what an
    HPA's utilisation is measured against)."""
    cpu = mem = 0.0
    for c in (deployment.spec.template.spec.containers or []):
        req = (c.resources.requests if c.resources is not None else None) or {}
        cpu += quantity(req["cpu"]) if "cpu" in req else 0.0
        mem += quantity(req["memory"]) / 1024 / 1024 if "memory" in req else 0.0
    return cpu, mem


def _targets(hpa) -> dict[str, int]:
    out = {}
    for metric in hpa.spec.metrics or []:
        res = metric.resource
        if metric.type == "Resource" and res is not None and res.target is not None and res.target.average_utilization:
            out["cpu_percent" if res.name == "cpu" else "mem_percent"] = int(res.target.average_utilization)
    return out


def autoscale(api: client.ApiClient, runtime: RuntimeRef, usage: RuntimeUsage, scale: Any,
              now: float | None = None) -> list[Decision]:
    """Act for the runtime's HPAs when `usage` came from the kubelets (no metrics API); `scale`
    is the executor's scale(runtime, deployment, replicas). Returns the changes made."""
    if not usage.available or usage.source != KUBELET_SUMMARY:
        return []  # with a metrics API the HPAs act themselves
    ns = runtime.namespace
    now = time.time() if now is None else now
    up, down = cooldowns()
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    try:
        hpas = client.AutoscalingV2Api(api).list_namespaced_horizontal_pod_autoscaler(
            ns, label_selector=f"app.kubernetes.io/managed-by={MANAGED_BY}").items
    except ApiException as exc:
        log.info("autoscale %s: listing HPAs: %s", ns, exc.reason)
        return []
    made = []
    for hpa in hpas:
        ref = hpa.spec.scale_target_ref
        if ref.kind != "Deployment":
            continue
        try:
            deployment = apps.read_namespaced_deployment(ref.name, ns)
        except ApiException:
            continue
        cpu, mem = _requests(deployment)
        annotations = deployment.metadata.annotations or {}
        try:
            last = float(annotations.get(ANNOTATION, 0) or 0)
        except ValueError:
            last = 0.0
        unit = {"name": (hpa.metadata.labels or {}).get(SERVICE_LABEL, ref.name),
                "replicas": deployment.spec.replicas if deployment.spec.replicas is not None else 1,
                "autoscale": {"min": hpa.spec.min_replicas or 1, "max": hpa.spec.max_replicas, **_targets(hpa),
                              "cpu_request": cpu, "mem_request": mem, "last_change": last}}
        decision = decide(unit, usage, now, up, down)
        if decision is None:
            continue
        scale(runtime, ref.name, decision.desired)
        apps.patch_namespaced_deployment(ref.name, ns, {"metadata": {"annotations": {ANNOTATION: f"{now:.3f}"}}},
                                         field_manager=COMPONENT)
        _event(core, ns, deployment, decision, now)
        made.append(decision)
    return made


def _event(core: client.CoreV1Api, ns: str, deployment, decision: Decision, now: float) -> None:
    stamp = dt.datetime.fromtimestamp(now, dt.UTC)
    try:
        core.create_namespaced_event(ns, {
            "metadata": {"name": f"{deployment.metadata.name}.{uuid.uuid4().hex[:12]}", "namespace": ns},
            "involvedObject": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment.metadata.name,
                               "namespace": ns, "uid": deployment.metadata.uid},
            "reason": AUTOSCALED, "message": decision.message, "type": "Normal",
            "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
            "firstTimestamp": stamp.isoformat(), "lastTimestamp": stamp.isoformat(), "count": 1,
        })
    except ApiException as exc:  # the scale happened; a lost event must not undo or repeat it
        log.warning("autoscale %s: recording the event: %s", ns, exc.reason)
