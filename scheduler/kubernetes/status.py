"""Health of a runtime from its objects, pods and events (plain dicts, as the API returns them)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from scheduler.base import GroupStatus, Health, JobState, JobStatus, ReplicaStatus, RuntimeRef, ServiceStatus
from scheduler.kubernetes.addons.health import JOB_PREFIX, SERVICE_PREFIX
from scheduler.kubernetes.meta import ADDON_LABEL, SERVICE_LABEL

# Container waiting reasons that mean something is wrong rather than slow.
BAD_WAITING = (
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
)
_RANK = {Health.HEALTHY: 0, Health.PROGRESSING: 1, Health.UNKNOWN: 2, Health.MISSING: 3, Health.DEGRADED: 4}


def _labels(obj: dict) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _name(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("name", "")


def replica_status(pod: dict) -> ReplicaStatus:
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    state = status.get("phase", "")
    for c in containers:
        waiting = (c.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            state = waiting["reason"]
            break
        terminated = (c.get("state") or {}).get("terminated")
        if terminated:
            state = f"exited({terminated.get('exitCode')})"
    return ReplicaStatus(
        name=_name(pod),
        ready=ready,
        restarts=sum(int(c.get("restartCount") or 0) for c in containers),
        state=state,
        address=status.get("podIP", "") or "",
    )


def pod_problem(pod: dict) -> str:
    """Why a pod is not working, or "" when nothing is known to be wrong."""
    status = pod.get("status") or {}
    for c in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        waiting = (c.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in BAD_WAITING:
            message = waiting.get("message") or ""
            # A crash loop's message only says "back-off"; why it crashed is the last exit.
            last = (c.get("lastState") or {}).get("terminated") or {}
            if last.get("exitCode") is not None:
                message = f"{message} (last exit code {last['exitCode']}" + (
                    f", {last['reason']})" if last.get("reason") else ")")
            return f"{waiting['reason']}: {message}".rstrip(": ")
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and cond.get("reason") == "Unschedulable":
            return f"Unschedulable: {cond.get('message', '')}".rstrip(": ")
    return ""


def event_problem(events: Iterable[dict], names: set[str]) -> str:
    """The newest warning about the given objects that explains a failure (quota, probes)."""
    newest: tuple[str, str] | None = None
    for ev in events:
        if ev.get("type") != "Warning":
            continue
        involved = (ev.get("involvedObject") or {}).get("name", "")
        if involved not in names:
            continue
        reason, message = ev.get("reason", ""), ev.get("message", "")
        if reason == "FailedCreate" and "quota" in message:
            text = f"quota: {message}"
        elif reason == "Unhealthy":
            text = f"probe failed: {message}"
        elif reason == "FailedScheduling":
            text = f"Unschedulable: {message}"
        else:
            continue
        stamp = ev.get("lastTimestamp") or ev.get("eventTime") or ""
        if newest is None or stamp >= newest[0]:
            newest = (stamp, text)
    return newest[1] if newest else ""


def _replica_set_names(events: Iterable[dict]) -> set[str]:
    """The ReplicaSets the events are about (read once per group, not once per service)."""
    out = set()
    for ev in events:
        involved = ev.get("involvedObject") or {}
        if involved.get("kind") == "ReplicaSet":
            out.add(involved.get("name", ""))
    return out


def workload_status(name: str, obj: dict | None, pods: list[dict], events: list[dict],
                    replica_sets: set[str] | None = None) -> ServiceStatus:
    """A Deployment, DaemonSet or StatefulSet and its pods as a ServiceStatus (`replica_sets`:
    _replica_set_names(events), when the caller has it already)."""
    if obj is None:
        return ServiceStatus(name=name, desired=0, health=Health.MISSING, reason="not found")
    kind = obj.get("kind", "")
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    if kind == "DaemonSet":
        desired = int(st.get("desiredNumberScheduled") or 0)
        updated = int(st.get("updatedNumberScheduled") or 0)
        ready = int(st.get("numberReady") or 0)
        available = int(st.get("numberAvailable") or 0)
    else:
        desired = int(spec.get("replicas", 1))
        updated = int(st.get("updatedReplicas") or 0)
        ready = int(st.get("readyReplicas") or 0)
        # Older StatefulSet controllers leave availableReplicas out: ready counts then.
        fallback = ready if kind == "StatefulSet" else 0
        available = int(st.get("availableReplicas") or fallback)
    replicas = tuple(sorted((replica_status(p) for p in pods), key=lambda r: r.name))
    names = {name, *(_name(p) for p in pods)}
    if replica_sets is None:
        replica_sets = _replica_set_names(events)
    names |= {rs for rs in replica_sets if rs.startswith(f"{name}-")}
    reason = next((p for p in (pod_problem(pod) for pod in pods) if p), "")
    for cond in st.get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            message = cond.get("message", "")
            reason = reason or (f"quota: {message}" if "quota" in message else message)
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            reason = reason or f"rollout stalled: {cond.get('message', '')}"
    settled = int(st.get("observedGeneration") or 0) >= int((obj.get("metadata") or {}).get("generation") or 0)
    done = settled and ready >= desired and available >= desired and updated >= desired
    if kind != "DaemonSet" and int(st.get("replicas") or 0) > updated:
        # Old replicas are still terminating: not rolled out yet (as `kubectl rollout status`).
        done = False
    if done and not pods_exceed(pods, desired):
        health, reason = Health.HEALTHY, ""
    else:
        reason = reason or event_problem(events, names)
        health = Health.DEGRADED if reason else Health.PROGRESSING
    return ServiceStatus(
        name=name,
        desired=desired,
        updated=updated,
        ready=ready,
        available=available,
        health=health,
        reason=reason,
        replicas=replicas,
    )


def pods_exceed(pods: list[dict], desired: int) -> bool:
    """Old pods still terminating after a rollout do not make it unhealthy: only count live ones."""
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    return len(live) > desired and any(not replica_status(p).ready for p in live)


def ingress_urls(ingresses: Iterable[dict]) -> dict[str, str]:
    """Where each service answers from outside: the first host and path of an Ingress rule that
    routes to its Service (https when the Ingress has TLS for that host)."""
    urls: dict[str, str] = {}
    for ing in ingresses:
        spec = ing.get("spec") or {}
        tls_hosts = {h for t in spec.get("tls") or [] for h in t.get("hosts") or []}
        for rule in spec.get("rules") or []:
            host = rule.get("host") or ""
            if not host:
                continue
            for path in (rule.get("http") or {}).get("paths") or []:
                service = ((path.get("backend") or {}).get("service") or {}).get("name")
                if service and service not in urls:
                    scheme = "https" if host in tls_hosts else "http"
                    urls[service] = f"{scheme}://{host}{path.get('path') or '/'}"
    return urls


def group_status(
    runtime: RuntimeRef,
    namespace_exists: bool,
    workloads: Iterable[dict],
    pods: Iterable[dict],
    events: Iterable[dict],
    expected: Iterable[str] = (),
    custom: dict[str, ServiceStatus | JobStatus] | None = None,
    ingresses: Iterable[dict] = (),
    jobs: tuple[dict[str, JobStatus], Health, str] | None = None,
) -> GroupStatus:
    """The runtime's status: each service and addon (built-in from its StatefulSet, operator-backed
    from its custom resource: `custom`), its `engine: spark` jobs' latest runs with what they make
    of its health (`jobs`: scheduler.spark.operator.jobs_status), the worst health with its reason."""
    if not namespace_exists:
        return GroupStatus(runtime=runtime, health=Health.MISSING, reason="namespace not found")
    events = list(events)
    replica_sets = _replica_set_names(events)
    by_service: dict[str, list[dict]] = {}
    by_addon: dict[str, list[dict]] = {}
    for pod in pods:
        labels = _labels(pod)
        if SERVICE_LABEL in labels:
            by_service.setdefault(labels[SERVICE_LABEL], []).append(pod)
        elif ADDON_LABEL in labels:
            by_addon.setdefault(labels[ADDON_LABEL], []).append(pod)
    services: dict[str, ServiceStatus] = {}
    addons: dict[str, ServiceStatus] = {}
    for obj in workloads:
        labels = _labels(obj)
        if SERVICE_LABEL in labels:
            name = labels[SERVICE_LABEL]
            services[name] = workload_status(name, obj, by_service.get(name, []), events, replica_sets)
        elif ADDON_LABEL in labels:
            name = labels[ADDON_LABEL]
            addons[name] = workload_status(name, obj, by_addon.get(name, []), events, replica_sets)
    for name in expected:
        services.setdefault(name, workload_status(name, None, [], events, replica_sets))
    flink_runs: dict[str, JobStatus] = {}
    for key, st in (custom or {}).items():
        if key.startswith(JOB_PREFIX) and isinstance(st, JobStatus):  # an engine's job run (a FlinkDeployment)
            flink_runs[key[len(JOB_PREFIX):]] = st
        elif key.startswith(SERVICE_PREFIX):  # an engine's service (a FlinkDeployment)
            services[key[len(SERVICE_PREFIX):]] = dataclasses.replace(st, name=key[len(SERVICE_PREFIX):])
        else:
            addons[key] = st
    for name, url in ingress_urls(ingresses).items():
        if name in services:
            services[name] = dataclasses.replace(services[name], url=url)
    health, reason = Health.HEALTHY, ""
    for kind, group in (("service", services), ("addon", addons)):
        for name, st in sorted(group.items()):
            if _RANK[st.health] > _RANK[health]:
                health, reason = st.health, f"{kind} {name}: {st.reason}" if st.reason else f"{kind} {name}"
    runs: dict[str, JobStatus] = dict(flink_runs)
    if jobs is not None:  # the engine: spark jobs' SparkApplications (scheduler.spark.operator.jobs_status)
        spark_runs, jobs_health, jobs_reason = jobs
        runs.update(spark_runs)
        if _RANK[jobs_health] > _RANK[health]:
            health, reason = jobs_health, jobs_reason
    for name, run in sorted(flink_runs.items()):  # a run that failed degrades the runtime, one running holds it
        job_health = (Health.DEGRADED if run.state in (JobState.FAILED, JobState.CANCELLED)
                      else Health.PROGRESSING if not run.state.finished else Health.HEALTHY)
        if _RANK[job_health] > _RANK[health]:
            health, reason = job_health, f"job {name}: run {run.name} {run.state}" + (
                f": {run.message}" if run.message else "")
    if health is Health.MISSING:
        health = Health.DEGRADED
    return GroupStatus(runtime=runtime, health=health, reason=reason, services=services, addons=addons, jobs=runs)
