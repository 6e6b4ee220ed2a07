"""One deployment's rollout, as the worker runs it: build the service group, apply it under the
runtime's lock, then follow the executor's status until healthy, failed or timed out.

Order of what starts: addons first, then services in depends_on order. The local executor does
that itself (a service's replicas wait until what it depends on is ready). On Kubernetes the
whole group is applied in one server-side-apply pass in the renderer's order (Secrets, addon
objects, Services, workloads, Jobs, Ingresses), and each service's pods start with an init
container that waits until the runtime's addons and the services it depends on accept
connections (scheduler/kubernetes/services.py: wait_for_dependencies). Either way the
deployment is healthy only when every addon and every service is ready.

Safe to run twice and to resume: it re-reads the row, refuses work that is no longer active,
re-applies idempotently, and measures its timeout from when the rollout first started.

In a worker the Celery task only applies: following the status is handed to a thread of the
worker process (`follow_in_background`), so no task waits for a rollout (Redis would deliver
an unacknowledged message again after its visibility timeout). The follower beats the row's
heartbeat; when its process dies, the deploy reconciler resumes the rollout (at the next
worker's start, or once the heartbeat is stale)."""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.clusters.services import capabilities, node_selectors, overcommit_for
from apps.deploy import bundles, variables
from apps.deploy.addons import addon_secrets
from apps.deploy.choices import ACTIVE_STATUSES, DeploymentStatus
from apps.deploy.engines import runtime_executor
from apps.deploy.lifecycle import IllegalTransition, parse_for, record_progress, transition
from apps.deploy.models import Deployment, Runtime
from apps.deploy.refs import runtime_ref
from apps.pipelines.models import ProjectConfig
from diceyml import DiceYml
from diceyml.placeholders import secret_keys
from scheduler.base import (
    ExecutorError,
    GroupStatus,
    Health,
    JobState,
    JobStatus,
    ServiceGroup,
    ServiceStatus,
    status_changes,
)

log = logging.getLogger(__name__)

S = DeploymentStatus
HEARTBEAT = 5.0  # seconds between heartbeats while nothing changes


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def timeout_for(doc: DiceYml) -> float:
    """The rollout's time limit: DICE_DEPLOY_TIMEOUT (300 s), raised to the longest health-check
    duration plus a minute, capped at DICE_DEPLOY_TIMEOUT_MAX (1800 s)."""
    durations = [s.health_check.duration for s in doc.services.values() if s.health_check is not None]
    # a data engine's job run once per release: the rollout waits for its end (its own deadline, if any)
    durations += [j.active_deadline for j in doc.jobs.values() if j.engine and not j.schedule and j.active_deadline]
    wanted = max([_setting("DICE_DEPLOY_TIMEOUT", 300), *(d + 60 for d in durations)])
    return min(wanted, _setting("DICE_DEPLOY_TIMEOUT_MAX", 1800))


def start_order(doc: DiceYml) -> list[str]:
    """Addons (by name), then services so that each comes after what it depends on."""
    order: list[str] = sorted(doc.addons)
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...] = ()) -> None:
        if name in done or name in path or name not in doc.services:
            return
        for dep in doc.services[name].depends_on:
            visit(dep, (*path, name))
        done.add(name)
        order.append(name)

    for name in sorted(doc.services):
        visit(name)
    return order


def build_group(deployment: Deployment, doc: DiceYml) -> ServiceGroup:
    runtime = deployment.runtime
    cluster = runtime.cluster
    # The release's files: where the local cluster runs services from, and where a data engine's
    # job finds a `resource` given as a relative path.
    engine_jobs = any(job.engine for job in doc.jobs.values())
    workdir = (bundles.release_workdir(deployment.release)
               if capabilities(cluster).release_files or engine_jobs else None)
    plain, secret, digest = variables.for_runtime(runtime)
    return ServiceGroup(
        runtime=runtime_ref(runtime),
        spec=doc,
        release=f"v{deployment.release.version}",
        images=dict(deployment.release.image_overrides),
        workdir=workdir,
        overcommit=overcommit_for(cluster, runtime.workspace.kind),
        addon_secrets=addon_secrets(runtime, doc),
        cluster_name=cluster.name,
        # Project configs that the spec's ((KEY)) placeholders name; a missing one is refused
        # by the executor with its name.
        secret_configs=ProjectConfig.values_of(runtime.application.project_id, secret_keys(doc)),
        node_selectors=node_selectors(cluster, runtime.workspace.kind),
        # The console's variables of the application in this workspace, as they are now.
        variables=plain,
        secret_variables=secret,
        variables_digest=digest,
    )


def _service_progress(status: ServiceStatus) -> dict:
    return {
        "desired": status.desired,
        "ready": status.ready,
        "updated": status.updated,
        "health": str(status.health),
        "reason": status.reason,
        "url": status.url,
    }


def _job_progress(status: JobStatus) -> dict:
    return {"run": status.name, "state": str(status.state), "exit_code": status.exit_code,
            "message": status.message, "started": status.started, "finished": status.finished}


def progress_of(status: GroupStatus, order: list[str]) -> dict:
    progress = {
        "health": str(status.health),
        "reason": status.reason,
        "order": order,
        "addons": {n: _service_progress(s) for n, s in sorted(status.addons.items())},
        "services": {n: _service_progress(s) for n, s in status.services.items()},
    }
    if status.jobs:  # a data engine's jobs (`engine: spark`): their runs' states
        progress["jobs"] = {n: _job_progress(s) for n, s in sorted(status.jobs.items())}
    return progress


def failed_job(status: GroupStatus, doc: DiceYml) -> str:
    """Why the rollout failed, when a job it runs once (a data engine's, without schedule) ended badly."""
    for name, job in sorted(status.jobs.items()):
        spec = doc.jobs.get(name)
        if spec is not None and not spec.schedule and job.state in (JobState.FAILED, JobState.CANCELLED):
            return f"job {name}: run {job.name} {job.state}" + (f": {job.message}" if job.message else "")
    return ""


def _load(deployment_id: int) -> Deployment | None:
    return (
        Deployment.objects.select_related(
            "release__application__project__organization",
            "runtime__application__project__organization", "runtime__workspace", "runtime__cluster",
        )
        .filter(pk=deployment_id)
        .first()
    )


def _fail(deployment: Deployment, reason: str) -> dict:
    try:
        transition(deployment, S.FAILED, reason)
    except (IllegalTransition, Deployment.DoesNotExist):
        return {"deployment": deployment.pk, "status": "stopped", "reason": "no longer active"}
    return {"deployment": deployment.pk, "status": S.FAILED, "reason": reason}


def run(deployment_id: int, follow: bool = True) -> dict:
    """The body of apps.deploy.tasks.run_deployment. With follow=False the rollout is applied and
    then followed by a thread of this process (follow_in_background) while the caller returns."""
    deployment = _load(deployment_id)
    if deployment is None:
        return {"deployment": deployment_id, "skipped": "no such deployment"}
    if deployment.status not in ACTIVE_STATUSES:
        return {"deployment": deployment_id, "skipped": f"already {deployment.status}"}

    try:
        if deployment.status == S.QUEUED:
            transition(deployment, S.DEPLOYING, "a worker started the rollout")
        applied = _apply(deployment_id)
    except IllegalTransition:
        return {"deployment": deployment_id, "skipped": "no longer active"}
    except (ExecutorError, bundles.WorkdirError) as exc:
        return _fail(deployment, str(exc))
    except ValidationError as exc:
        return _fail(deployment, "; ".join(exc.messages))
    except Exception as exc:  # a bug must not leave the deployment hanging in "deploying"
        log.exception("deployment %s failed unexpectedly", deployment_id)
        return _fail(deployment, f"internal error: {exc.__class__.__name__}: {exc}")
    if applied is None:
        return {"deployment": deployment_id, "skipped": "no longer active"}
    deployment, doc = applied
    if not follow:
        follow_in_background(deployment, doc)
        return {"deployment": deployment_id, "status": "following"}
    return _follow(deployment, doc)


# Rollouts this process follows (deployment id -> thread): one follower per rollout and process.
_FOLLOWERS: dict[int, threading.Thread] = {}
_FOLLOWERS_LOCK = threading.Lock()


def followed_here(deployment_id: int) -> bool:
    with _FOLLOWERS_LOCK:
        thread = _FOLLOWERS.get(deployment_id)
        return thread is not None and thread.is_alive()


def follow_in_background(deployment: Deployment, doc: DiceYml, done=None) -> bool:
    """Follow the rollout in a thread of this process (False: one already does). `done(result)` is
    called with _follow's result when it ends."""
    from django.db import connection

    def body() -> None:
        try:
            result = _follow(deployment, doc)
            if done is not None:
                done(result)
        except Exception:  # the heartbeat stops: the reconciler resumes the rollout
            log.exception("following deployment %s failed", deployment.pk)
        finally:
            with _FOLLOWERS_LOCK:
                _FOLLOWERS.pop(deployment.pk, None)
            connection.close()

    with _FOLLOWERS_LOCK:
        current = _FOLLOWERS.get(deployment.pk)
        if current is not None and current.is_alive():
            return False
        thread = threading.Thread(target=body, name=f"dice-rollout-{deployment.pk}", daemon=True)
        _FOLLOWERS[deployment.pk] = thread
        thread.start()
    return True


def _apply(deployment_id: int) -> tuple[Deployment, DiceYml] | None:
    """Prepare the group (files, addon credentials) outside any lock, then apply it under the
    runtime's row lock, so two rollouts of one runtime never interleave their applies and a
    deleted or superseded rollout is never applied after the fact."""
    deployment = _load(deployment_id)
    if deployment is None or deployment.status != S.DEPLOYING:
        return None
    doc = parse_for(deployment.release, deployment.runtime.workspace.kind)
    group = build_group(deployment, doc)
    with transaction.atomic():
        runtime = Runtime.objects.select_for_update(of=("self",)).select_related("cluster").filter(
            pk=deployment.runtime_id
        ).first()
        current = Deployment.objects.filter(pk=deployment_id).values_list("status", flat=True).first()
        if runtime is None or current != S.DEPLOYING:
            return None
        runtime_executor(runtime).apply(group)
        Runtime.objects.filter(pk=runtime.pk).update(release=deployment.release, replicas={}, updated=timezone.now())
        Deployment.objects.filter(pk=deployment.pk).update(
            attempts=deployment.attempts + 1, heartbeat=timezone.now(),
            progress={"health": str(Health.PROGRESSING), "reason": "applied", "order": start_order(doc),
                      "addons": {}, "services": {}},
        )
    return deployment, doc


def _follow(deployment: Deployment, doc: DiceYml) -> dict:
    """Follow the executor's status until every addon and service is ready; fail on a lasting
    degradation (DICE_DEPLOY_DEGRADED_GRACE, 60 s) or when the rollout's time limit passes.

    Event-driven: the status is read again when the executor reports a change (watches of the
    namespace on Kubernetes, the supervisor's notifications on local), and at least every
    DICE_DEPLOY_RECHECK_INTERVAL (5 s) for the heartbeat and a deployment cancelled meanwhile.
    An executor that cannot report changes is polled every DICE_DEPLOY_POLL_INTERVAL (1 s)."""
    runtime = deployment.runtime
    executor, ref = runtime_executor(runtime), runtime_ref(runtime)
    order = start_order(doc)
    limit = timeout_for(doc)
    started = deployment.started or timezone.now()
    grace = _setting("DICE_DEPLOY_DEGRADED_GRACE", 60)
    recheck = _setting("DICE_DEPLOY_RECHECK_INTERVAL", HEARTBEAT)
    changes = status_changes(executor, ref, _setting("DICE_DEPLOY_POLL_INTERVAL", 1.0))
    try:
        return _follow_changes(deployment, executor, ref, changes, order, limit, started, grace, recheck, doc)
    finally:
        changes.close()


def _follow_changes(deployment, executor, ref, changes, order, limit, started, grace, recheck, doc) -> dict:
    degraded_since: float | None = None
    last_progress: dict | None = None
    last_beat = time.monotonic()
    while True:
        current = Deployment.objects.filter(pk=deployment.pk).values_list("status", flat=True).first()
        if current not in ACTIVE_STATUSES:
            return {"deployment": deployment.pk, "status": current or "deleted"}
        try:
            status = executor.status(ref)
        except ExecutorError as exc:
            status = GroupStatus(runtime=ref, health=Health.UNKNOWN, reason=str(exc))
        progress = progress_of(status, order)
        try:
            if status.health == Health.HEALTHY:
                # The healthy transition carries the final progress: one commit, one push.
                Deployment.objects.filter(pk=deployment.pk, status__in=ACTIVE_STATUSES).update(progress=progress)
                deployment.progress = progress
                transition(deployment, S.HEALTHY, "every addon and service is ready")
                return {"deployment": deployment.pk, "status": S.HEALTHY}
            if progress != last_progress:
                record_progress(deployment, progress)  # also beats the heart
                last_progress, last_beat = progress, time.monotonic()
            elif time.monotonic() - last_beat >= HEARTBEAT:
                Deployment.objects.filter(pk=deployment.pk).update(heartbeat=timezone.now())
                last_beat = time.monotonic()
            if why := failed_job(status, doc):  # a job's run has ended: no grace brings it back
                record_progress(deployment, progress)
                return _fail(deployment, why)
            if status.health == Health.DEGRADED:
                degraded_since = degraded_since or time.monotonic()
                if time.monotonic() - degraded_since >= grace:
                    return _fail(deployment, f"unhealthy for {grace:.0f}s: {status.reason}")
            else:
                degraded_since = None
        except (IllegalTransition, Deployment.DoesNotExist):
            return {"deployment": deployment.pk, "status": "stopped"}
        elapsed = (timezone.now() - started).total_seconds()
        if elapsed >= limit:
            return _fail(deployment, f"not healthy after {limit:.0f}s: {status.health} {status.reason}".strip())
        # Wake up on a change, or when the heartbeat, the grace or the time limit is due.
        due = [recheck, HEARTBEAT - (time.monotonic() - last_beat), limit - elapsed]
        if degraded_since is not None:
            due.append(grace - (time.monotonic() - degraded_since))
        changes.wait(max(0.0, min(due)))
