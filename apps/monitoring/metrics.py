"""Metrics of runtimes: collected through the engine (`usage()` of the runtime's cluster), stored
raw and as five-minute averages, expired, and read back as series, latest values and Prometheus
text. The collector also notices a runtime that became degraded after a healthy deployment."""

from __future__ import annotations

import datetime
import logging
from collections import defaultdict
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from apps.clusters.models import Cluster
from apps.clusters.services import cluster_executor, cluster_inspector
from apps.deploy.lifecycle import push_changed, runtime_group
from apps.deploy.models import Deployment, Runtime
from apps.deploy.refs import runtime_ref
from apps.monitoring import services
from apps.monitoring.choices import NotifyEvent
from apps.monitoring.models import MetricSample, NodeSample, RuntimeHealth
from apps.projects import audit
from dice_console.statemachine import push_after_commit
from scheduler.base import (
    ExecutorError,
    Health,
    RuntimeUsage,
    autoscale_of,
    node_usage_of,
    sampling_pass,
    usage_of,
)

log = logging.getLogger(__name__)

BUCKET = MetricSample.FIVE_MINUTES
# Events of a cluster that record an autoscaler's change: the local engine's, a HorizontalPodAutoscaler's.
SCALING_REASONS = ("Autoscaled", "SuccessfulRescale")
WINDOWS = {"1h": datetime.timedelta(hours=1), "1d": datetime.timedelta(days=1)}


def _setting(name: str, default):
    return getattr(settings, name, default)


# ---- collecting ----------------------------------------------------------------------------------


def samples_of(runtime: Runtime, usage: RuntimeUsage, at: datetime.datetime) -> list[MetricSample]:
    """The rows one measurement makes: one per replica and one per service (its replicas' sum)."""
    rows, per_service = [], defaultdict(list)
    for r in usage.replicas:
        per_service[r.service].append(r)
        rows.append(MetricSample(runtime=runtime, service=r.service, replica=r.replica, at=at,
                                 cpu_millicores=r.cpu_millicores, memory_bytes=r.memory_bytes,
                                 restarts=r.restarts, replicas=1, ready=int(r.ready)))
    for service, replicas in per_service.items():
        cpus = [r.cpu_millicores for r in replicas if r.cpu_millicores is not None]
        mems = [r.memory_bytes for r in replicas if r.memory_bytes is not None]
        traffic = usage.traffic.get(service) or {}
        rows.append(MetricSample(runtime=runtime, service=service, replica="", at=at,
                                 cpu_millicores=sum(cpus) if cpus else None, memory_bytes=sum(mems) if mems else None,
                                 restarts=sum(r.restarts for r in replicas), replicas=len(replicas),
                                 ready=sum(r.ready for r in replicas), connections=traffic.get("connections"),
                                 replies=traffic.get("replies"), first_byte_seconds=traffic.get("first_byte_seconds")))
    return rows


def collect_runtime(runtime: Runtime, executor=None) -> dict:
    """Measure one runtime now and store it; notify runtime.degraded when it turned degraded
    while its latest deployment is healthy. Returns what was done."""
    executor = executor or cluster_executor(runtime.cluster)
    ref = runtime_ref(runtime)
    now = timezone.now()
    try:
        status = executor.status(ref)
        usage = usage_of(executor, ref)
    except ExecutorError as exc:
        log.info("metrics: %s: %s", runtime, exc)
        return {"runtime": runtime.pk, "error": str(exc)}
    rows = samples_of(runtime, usage, now) if usage.available else []
    try:  # a cluster whose autoscalers cannot measure (Kubernetes without metrics-server): the engine scales
        autoscaled = autoscale_of(executor, ref, usage)
    except ExecutorError as exc:
        log.info("autoscale: %s: %s", runtime, exc)
        autoscaled = []
    try:
        events = [e for e in executor.events(ref) if e.reason in SCALING_REASONS]
    except ExecutorError:
        events = []
    with transaction.atomic():
        MetricSample.objects.bulk_create(rows)
        degraded = _observe_health(runtime, status.health, status.reason, usage, now)
        scaled = _audit_scaling(runtime, events)
        if rows:  # the runtime page's graphs refresh on this push
            push_after_commit(runtime_group(runtime.pk), {"type": "metrics.sampled", "runtime": runtime.pk,
                                                          "at": now.isoformat()})
        if autoscaled:
            push_changed(runtime.pk, "autoscale")
    return {"runtime": runtime.pk, "samples": len(rows), "available": usage.available, "degraded": degraded,
            "scaled": scaled, "autoscaled": [d.message for d in autoscaled]}


def _audit_scaling(runtime: Runtime, events) -> int:
    """Copy the cluster's scaling events not yet copied into the audit log (actor: system)."""
    seen = RuntimeHealth.objects.filter(runtime=runtime).values_list("scaling_seen", flat=True).first() or 0.0
    fresh = sorted((e for e in events if e.timestamp > seen), key=lambda e: e.timestamp)
    for event in fresh:
        audit.record(None, "runtime.autoscale", runtime, after={
            "service": event.object, "message": event.message, "reason": event.reason, "at": event.timestamp})
    if fresh:
        RuntimeHealth.objects.filter(runtime=runtime).update(scaling_seen=fresh[-1].timestamp)
    return len(fresh)


def _observe_health(runtime: Runtime, health: str, reason: str, usage: RuntimeUsage, now) -> bool:
    seen = RuntimeHealth.objects.select_for_update().filter(runtime=runtime).first()
    before = seen.health if seen else ""
    fields = {"health": str(health), "reason": reason[:2000], "metrics_available": usage.available,
              "metrics_reason": usage.reason}
    if seen is None:
        RuntimeHealth.objects.create(runtime=runtime, since=now, **fields)
    else:
        if before != str(health):
            fields["since"] = now
        RuntimeHealth.objects.filter(pk=seen.pk).update(**fields)
    if str(health) != Health.DEGRADED or before == Health.DEGRADED:
        return False
    latest = Deployment.objects.filter(runtime=runtime).order_by("-created", "-id").first()
    if latest is None or latest.status != "healthy":
        return False  # a rollout under way or failed reports itself
    project = runtime.application.project
    services.notify(project, NotifyEvent.RUNTIME_DEGRADED, f"Runtime {runtime} is degraded: {reason}", {
        "runtime": runtime.pk, "application": runtime.application.slug, "workspace": runtime.workspace.kind,
        "runtime_name": runtime.name, "reason": reason, "deployment": latest.pk,
    }, url=runtime.get_absolute_url())
    return True


def deployed_runtimes():
    return Runtime.objects.exclude(release=None).select_related(
        "application__project__organization", "workspace", "cluster")


def collect_all() -> dict:
    """Measure every deployed runtime and every cluster's nodes (the worker's periodic task), in
    one sampling pass: a node's kubelet summary is fetched once for all runtimes on it and the
    node's own sample."""
    with sampling_pass():
        done = [collect_runtime(runtime) for runtime in deployed_runtimes()]
        nodes = sum(collect_nodes(cluster) for cluster in Cluster.objects.all())
    return {"runtimes": len(done), "samples": sum(d.get("samples", 0) for d in done),
            "errors": sum(1 for d in done if d.get("error")), "node_samples": nodes}


def collect_nodes(cluster: Cluster) -> int:
    """Measure a cluster's nodes (through its inspector); 0 when it cannot say or is unreachable."""
    try:
        usage = node_usage_of(cluster_inspector(cluster))
    except (ExecutorError, OSError) as exc:
        log.info("metrics: nodes of %s: %s", cluster, exc)
        return 0
    if not usage:
        return 0
    now = timezone.now()
    with transaction.atomic():
        NodeSample.objects.bulk_create([NodeSample(cluster=cluster, node=n.name, at=now,
                                                   cpu_millicores=n.cpu_millicores, memory_bytes=n.memory_bytes)
                                        for n in usage])
        # the cluster page's node usage refreshes on this push
        push_after_commit(cluster_group(cluster.pk), {"type": "metrics.sampled", "cluster": cluster.pk,
                                                      "at": now.isoformat()})
    return len(usage)


def cluster_group(cluster_id: int) -> str:
    """The Channels group that hears of a cluster's new node samples (/ws/clusters/<id>/usage/)."""
    return f"cluster-usage-{cluster_id}"


def node_series(cluster: Cluster, window: str = "1h", now: datetime.datetime | None = None) -> dict[str, list[dict]]:
    """node -> raw points ({at, cpu_millicores, memory_bytes}) over the window (five-minute
    averages and the raw tail for a day)."""
    now = now or timezone.now()
    base = NodeSample.objects.filter(cluster=cluster, at__gte=now - WINDOWS[window])
    fields = ("node", "at", "cpu_millicores", "memory_bytes")
    if window == "1h":
        rows = list(base.filter(resolution=MetricSample.RAW).order_by("at").values(*fields))
    else:
        rows = list(base.filter(resolution=BUCKET).order_by("at").values(*fields))
        last = rows[-1]["at"] + datetime.timedelta(seconds=BUCKET) if rows else now - WINDOWS[window]
        rows += list(base.filter(resolution=MetricSample.RAW, at__gte=last).order_by("at").values(*fields))
    out: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        out[row.pop("node")].append(row)
    return dict(out)


# ---- downsampling and retention ------------------------------------------------------------------


def _bucket(at: datetime.datetime) -> datetime.datetime:
    seconds = int(at.timestamp()) // BUCKET * BUCKET
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)


def rollup(now: datetime.datetime | None = None) -> int:
    """Average the services' raw samples into five-minute rows, for every finished bucket not yet
    rolled up. Returns the rows made. Running it twice makes nothing twice."""
    now = now or timezone.now()
    end = _bucket(now)
    done = {(r["runtime_id"], r["service"]): r["last"] for r in MetricSample.objects.filter(
        resolution=BUCKET, replica="").values("runtime_id", "service").annotate(last=Max("at"))}
    raw = MetricSample.objects.filter(resolution=MetricSample.RAW, replica="", at__lt=end)
    oldest = min(done.values(), default=None)
    if oldest is not None and len(done) > 0:
        raw = raw.filter(at__gte=min(oldest + datetime.timedelta(seconds=BUCKET), end))
    groups: dict[tuple, list] = defaultdict(list)
    for s in raw.values("runtime_id", "service", "at", "cpu_millicores", "memory_bytes", "restarts", "replicas",
                        "ready", "connections", "replies", "first_byte_seconds").iterator():
        bucket = _bucket(s["at"])
        last = done.get((s["runtime_id"], s["service"]))
        if last is not None and bucket <= last:
            continue
        groups[(s["runtime_id"], s["service"], bucket)].append(s)
    rows = []
    for (runtime_id, service, bucket), samples in groups.items():
        cpus = [s["cpu_millicores"] for s in samples if s["cpu_millicores"] is not None]
        mems = [s["memory_bytes"] for s in samples if s["memory_bytes"] is not None]
        rows.append(MetricSample(
            runtime_id=runtime_id, service=service, replica="", resolution=BUCKET, at=bucket,
            cpu_millicores=sum(cpus) / len(cpus) if cpus else None,
            memory_bytes=int(sum(mems) / len(mems)) if mems else None,
            restarts=max(s["restarts"] for s in samples), replicas=max(s["replicas"] for s in samples),
            ready=min(s["ready"] for s in samples),
            # counters: the bucket's last reading
            **{k: samples[-1][k] for k in ("connections", "replies", "first_byte_seconds")}))
    MetricSample.objects.bulk_create(rows)
    return len(rows) + _rollup_nodes(end)


def _rollup_nodes(end: datetime.datetime) -> int:
    last = NodeSample.objects.filter(resolution=BUCKET).aggregate(last=Max("at"))["last"]
    raw = NodeSample.objects.filter(resolution=MetricSample.RAW, at__lt=end)
    if last is not None:
        raw = raw.filter(at__gte=last + datetime.timedelta(seconds=BUCKET))
    groups: dict[tuple, list] = defaultdict(list)
    for s in raw.values("cluster_id", "node", "at", "cpu_millicores", "memory_bytes").iterator():
        groups[(s["cluster_id"], s["node"], _bucket(s["at"]))].append(s)
    rows = []
    for (cluster_id, node, bucket), samples in groups.items():
        cpus = [s["cpu_millicores"] for s in samples if s["cpu_millicores"] is not None]
        mems = [s["memory_bytes"] for s in samples if s["memory_bytes"] is not None]
        rows.append(NodeSample(cluster_id=cluster_id, node=node, resolution=BUCKET, at=bucket,
                               cpu_millicores=sum(cpus) / len(cpus) if cpus else None,
                               memory_bytes=int(sum(mems) / len(mems)) if mems else None))
    NodeSample.objects.bulk_create(rows)
    return len(rows)


def expire(now: datetime.datetime | None = None) -> int:
    """Drop raw samples older than DICE_METRICS_RAW_HOURS and averages older than
    DICE_METRICS_RETENTION_DAYS (0: keep)."""
    now = now or timezone.now()
    gone = 0
    raw_hours = float(_setting("DICE_METRICS_RAW_HOURS", 25))
    days = float(_setting("DICE_METRICS_RETENTION_DAYS", 7))
    for model in (MetricSample, NodeSample):
        if raw_hours > 0:
            gone += model.objects.filter(resolution=MetricSample.RAW,
                                         at__lt=now - datetime.timedelta(hours=raw_hours)).delete()[0]
        if days > 0:
            gone += model.objects.filter(at__lt=now - datetime.timedelta(days=days)).delete()[0]
    return gone


# ---- reading -------------------------------------------------------------------------------------


def series(runtime: Runtime, window: str = "1h", now: datetime.datetime | None = None) -> dict[str, list[dict]]:
    """service -> points ({at, cpu_millicores, memory_bytes, restarts, replicas, ready}) over the
    window: raw samples for an hour, five-minute averages (and the raw tail not yet averaged) for a day."""
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}")
    now = now or timezone.now()
    since = now - WINDOWS[window]
    fields = ("service", "at", "cpu_millicores", "memory_bytes", "restarts", "replicas", "ready", "connections",
              "replies", "first_byte_seconds")
    base = MetricSample.objects.filter(runtime=runtime, replica="", at__gte=since)
    if window == "1h":
        rows = list(base.filter(resolution=MetricSample.RAW).order_by("at").values(*fields))
    else:
        rows = list(base.filter(resolution=BUCKET).order_by("at").values(*fields))
        last = rows[-1]["at"] + datetime.timedelta(seconds=BUCKET) if rows else since
        rows += list(base.filter(resolution=MetricSample.RAW, at__gte=last).order_by("at").values(*fields))
    out: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        out[row.pop("service")].append(row)
    return dict(out)


def latest(runtimes: Iterable[Runtime]) -> list[MetricSample]:
    """The latest raw sample of every replica and service of these runtimes (the last collection's)."""
    ids = [r.pk for r in runtimes]
    stale = timezone.now() - datetime.timedelta(seconds=3 * float(_setting("DICE_METRICS_INTERVAL", 30)) + 60)
    last = {r["runtime_id"]: r["at"] for r in MetricSample.objects.filter(
        runtime_id__in=ids, resolution=MetricSample.RAW, at__gte=stale).values("runtime_id").annotate(at=Max("at"))}
    if not last:
        return []
    match = Q()
    for runtime_id, at in last.items():
        match |= Q(runtime_id=runtime_id, at=at)
    return list(MetricSample.objects.filter(match, resolution=MetricSample.RAW).select_related(
        "runtime__application__project__organization", "runtime__workspace").order_by(
        "runtime_id", "service", "replica"))
