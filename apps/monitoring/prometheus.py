"""The Prometheus text exposition format (version 0.0.4) of the console itself and of runtimes."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterable

from django.db.models import Count

from apps.deploy.models import Deployment, Runtime
from apps.monitoring.choices import DeliveryStatus
from apps.monitoring.models import MetricSample, NotificationDelivery
from apps.pipelines.models import PipelineRun

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_STARTED = time.time()


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}" if labels else ""


class Exposition:
    """Metric families in order, each with its HELP and TYPE once."""

    def __init__(self) -> None:
        self.families: dict[str, tuple[str, str, list[str]]] = {}

    def add(self, name: str, kind: str, help_text: str, value: float | int | None,
            labels: dict[str, str] | None = None) -> None:
        if value is None:
            return
        family = self.families.setdefault(name, (kind, help_text, []))
        family[2].append(f"{name}{_labels(labels or {})} {float(value):g}" if isinstance(value, float)
                         else f"{name}{_labels(labels or {})} {value}")

    def text(self) -> str:
        out = []
        for name, (kind, help_text, lines) in self.families.items():
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *lines]
        return "\n".join(out) + "\n"


def runtime_labels(runtime: Runtime) -> dict[str, str]:
    project = runtime.application.project
    return {"org": project.organization.slug, "project": project.slug, "app": runtime.application.slug,
            "workspace": runtime.workspace.kind, "runtime": runtime.name}


def runtimes_text(samples: Iterable[MetricSample]) -> str:
    """The latest samples (apps.monitoring.metrics.latest) as replica and service families."""
    out = Exposition()
    for s in samples:
        labels = {**runtime_labels(s.runtime), "service": s.service}
        if s.replica:
            labels["replica"] = s.replica
            prefix = "dice_replica"
        else:
            prefix = "dice_service"
            out.add("dice_service_replicas", "gauge", "Replicas measured", s.replicas, labels)
            out.add("dice_service_replicas_ready", "gauge", "Replicas ready", s.ready, labels)
            out.add("dice_service_connections_total", "counter", "Connections through the service's front proxy",
                    s.connections, labels)
            out.add("dice_service_first_byte_seconds_sum", "counter",
                    "Time from a request's first byte to the response's, summed over answered connections",
                    s.first_byte_seconds, labels)
            out.add("dice_service_first_byte_seconds_count", "counter", "Connections the service answered",
                    s.replies, labels)
        out.add(f"{prefix}_cpu_millicores", "gauge", "CPU used, in millicores", s.cpu_millicores, labels)
        out.add(f"{prefix}_memory_bytes", "gauge", "Resident memory", s.memory_bytes, labels)
        out.add(f"{prefix}_restarts_total", "counter", "Restarts so far", s.restarts, labels)
    return out.text()


def console_text() -> str:
    """The console's own process and what it manages."""
    out = Exposition()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.add("process_cpu_seconds_total", "counter", "CPU time of this console process",
            float(usage.ru_utime + usage.ru_stime))
    try:
        with open("/proc/self/statm") as fh:
            rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        rss = usage.ru_maxrss * 1024
    out.add("process_resident_memory_bytes", "gauge", "Resident memory of this console process", rss)
    out.add("process_start_time_seconds", "gauge", "When this console process started", float(_STARTED))
    out.add("dice_runtimes", "gauge", "Runtimes", Runtime.objects.count())
    for row in Deployment.objects.values("status").annotate(n=Count("id")).order_by("status"):
        out.add("dice_deployments", "gauge", "Deployments by status", row["n"], {"status": row["status"]})
    for row in PipelineRun.objects.values("status").annotate(n=Count("id")).order_by("status"):
        out.add("dice_pipeline_runs", "gauge", "Pipeline runs by status", row["n"], {"status": row["status"]})
    counts = dict(NotificationDelivery.objects.values_list("status").annotate(n=Count("id")).order_by())
    for status in DeliveryStatus.values:
        out.add("dice_notification_deliveries", "gauge", "Notification deliveries by status", counts.get(status, 0),
                {"status": status})
    out.add("dice_metric_samples", "gauge", "Metric samples stored", MetricSample.objects.count())
    return out.text()
