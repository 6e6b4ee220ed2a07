"""The one place that changes runtimes and deployments: deploy, rollback, cancel, scale, restart,
stop and delete (views, API, CLI, pipelines and tasks all come through here).

A deployment's status moves only through transition() (apps.deploy.lifecycle, on the shared
state-machine mechanism dice_console.statemachine: ALLOWED_TRANSITIONS checked under the row's
lock, the change recorded and pushed after commit); the rollout itself is apps.deploy.rollout."""

from __future__ import annotations

import logging
import re

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.clusters.models import Cluster
from apps.clusters.services import capabilities, overcommit_for
from apps.deploy import bundles, quota
from apps.deploy.access import require_deploy
from apps.deploy.choices import ACTIVE_STATUSES, DeploymentStatus
from apps.deploy.engines import check_engine_jobs, runtime_executor
from apps.deploy.lifecycle import (  # noqa: F401 (IllegalTransition, runtime_group: re-exported)
    IllegalTransition,
    parse_for,
    push_changed,
    runtime_group,
    transition,
)
from apps.deploy.live import live_status
from apps.deploy.models import Deployment, DeploymentTransition, Release, Runtime
from apps.deploy.refs import runtime_ref
from apps.deploy.services import create_release
from apps.deploy.tasks import run_deployment
from apps.projects import audit
from apps.projects.choices import WorkspaceKind
from apps.projects.models import Application, Workspace
from scheduler.base import ExecutorError, dns_label

log = logging.getLogger(__name__)

RUNTIME_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")
MAX_REPLICAS = 100


# ---- checks ---------------------------------------------------------------------------------------


def workspace_of(application: Application, kind: str) -> Workspace:
    kind = str(kind or "").upper()
    if kind not in WorkspaceKind.values:
        raise ValidationError({"workspace": f"unknown workspace {kind!r}; use {', '.join(WorkspaceKind.values)}"})
    return application.project.workspaces.select_related("cluster", "project__organization").get(kind=kind)


def check_runtime_name(name: str) -> str:
    if not RUNTIME_NAME.match(name or ""):
        hint = dns_label(name or "", 40)
        raise ValidationError({
            "runtime": f"{name!r} is not a runtime name: use lowercase letters, digits and hyphens "
            f"(at most 40), e.g. {hint!r}"
        })
    return name


def _dispatch(deployment_id: int) -> None:
    run_deployment.delay(deployment_id)


# ---- deploy, rollback, cancel -----------------------------------------------------------------------


def check_spark_step_quota(project_id: int, workspace_kind: str, cluster_name: str, params: dict, where: str) -> None:
    """A `spark` pipeline step's driver and executors (its sparkConf, over the overcommit ratios of
    the data cluster it runs on) against the workspace's quota, beside the workspace's runtimes:
    ValidationError({"quota": ...}) naming the step when they do not fit. Sizes the action cannot
    read are left to the step, which reports them with their field."""
    workspace = Workspace.objects.get(project_id=project_id, kind=workspace_kind)
    cluster = Cluster.objects.get(name=cluster_name)
    try:
        wanted = quota.spark_requests(params, where, overcommit_for(cluster, workspace.kind), workspace.kind)
    except ValidationError:
        return
    quota.check_quota(workspace, wanted, what=where)


@transaction.atomic
def deploy(
    user,
    application: Application,
    workspace: Workspace | str,
    *,
    release: Release,
    runtime_name: str = "main",
    rollback_of: Deployment | None = None,
) -> Deployment:
    """Roll `release` out onto the runtime (made now if new, on the workspace's cluster).

    Refuses (nothing changed) without `deploy:<WS>`, with an invalid runtime name, a release of
    another application, a spec invalid for the workspace, missing images on Kubernetes, or
    requests beyond the workspace's quotas. Supersedes the runtime's unfinished deployment,
    and hands the new one to a worker once the transaction commits."""
    if not isinstance(workspace, Workspace):
        workspace = workspace_of(application, workspace)
    require_deploy(user, application, workspace.kind)
    if workspace.project_id != application.project_id:
        raise ValidationError({"workspace": f"{workspace} is not a workspace of {application.project}"})
    if release.application_id != application.pk:
        raise ValidationError({"release": f"release {release.pk} is not a release of {application}"})
    check_runtime_name(runtime_name)
    doc = parse_for(release, workspace.kind)

    runtime = Runtime.objects.select_for_update().filter(
        application=application, workspace=workspace, name=runtime_name
    ).first()
    check_engine_jobs(workspace, runtime.cluster if runtime is not None else workspace.cluster, doc)
    created = runtime is None
    if created:
        runtime = Runtime.objects.create(
            application=application, workspace=workspace, name=runtime_name, cluster=workspace.cluster
        )
    cluster = runtime.cluster
    if capabilities(cluster).images:
        # a data engine's job needs no image here (a data cluster runs it, or the operator's default image)
        jobs = {n: j for n, j in doc.jobs.items() if not j.engine}
        missing = [n for n, s in {**doc.services, **jobs}.items() if not (release.image_overrides.get(n) or s.image)]
        if missing:
            raise ValidationError({"release": f"no image for {', '.join(sorted(missing))}: a Kubernetes "
                                              "cluster runs images; make a release that names them"})
    quota.check_quota(workspace, quota.requests_of(doc, cluster, workspace.kind,
                                                   data_clusters=quota.engine_clusters(workspace, doc)), excluding=runtime)

    deployment = Deployment.objects.create(
        runtime=runtime,
        release=release,
        rollback_of=rollback_of,
        created_by=user if user is not None and user.is_authenticated else None,
        created_by_name=getattr(user, "username", "") or "system",
    )
    why = f"rollback of deployment #{rollback_of.pk}" if rollback_of else "deploy"
    DeploymentTransition.objects.create(
        deployment=deployment, from_status="", to_status=DeploymentStatus.QUEUED,
        reason=f"{why} of {release} by {deployment.created_by_name}",
    )
    for older in runtime.deployments.filter(status__in=ACTIVE_STATUSES).exclude(pk=deployment.pk):
        transition(older, DeploymentStatus.SUPERSEDED, f"superseded by deployment #{deployment.pk}")
    if created:
        audit.record(user, "create", runtime, after=_runtime_snapshot(runtime))
    audit.record(user, "rollback" if rollback_of else "deploy", deployment, after={
        "id": deployment.pk, "runtime": runtime.pk, "release": release.pk, "version": release.version,
        "rollback_of": rollback_of.pk if rollback_of else None,
    })
    deployment_id = deployment.pk
    push_changed(runtime.pk, "rollback" if rollback_of else "deploy")  # viewers see the new row at once
    transaction.on_commit(lambda: _dispatch(deployment_id))
    return deployment


@transaction.atomic
def deploy_spec(
    user,
    application: Application,
    workspace: Workspace | str,
    *,
    spec_text: str | bytes,
    source_name: str = "dice.yml",
    images: dict | None = None,
    files: bytes | None = None,
    runtime_name: str = "main",
    description: str = "",
) -> Deployment:
    """Make a release from a dice.yml (with its folder's files, for the local cluster) and deploy it,
    all or nothing."""
    if not isinstance(workspace, Workspace):
        workspace = workspace_of(application, workspace)
    require_deploy(user, application, workspace.kind)
    release = create_release(
        user, application, spec_text=spec_text, images=images, source_name=source_name, description=description
    )
    if files:
        bundles.attach_bundle(release, files)
    return deploy(user, application, workspace, release=release, runtime_name=runtime_name)


def rollback(user, runtime: Runtime, release: Release) -> Deployment:
    """A new deployment of an earlier (or any) release of the runtime's application, rollback_of
    set to the runtime's latest deployment."""
    latest = runtime.deployments.order_by("-created", "-id").first()
    return deploy(
        user, runtime.application, runtime.workspace, release=release, runtime_name=runtime.name, rollback_of=latest
    )


def cancel(user, deployment: Deployment) -> Deployment:
    """Stop following an unfinished rollout. What was already applied stays: deploy or roll back to change it."""
    require_deploy(user, deployment.runtime.application, deployment.runtime.workspace.kind)
    with transaction.atomic():
        transition(deployment, DeploymentStatus.CANCELLED, f"cancelled by {getattr(user, 'username', 'system')}")
        audit.record(user, "cancel", deployment, after={"id": deployment.pk, "status": deployment.status})
    return deployment


# ---- operations on a runtime ----------------------------------------------------------------------


def _runtime_snapshot(runtime: Runtime) -> dict:
    return {
        "id": runtime.pk, "application": runtime.application_id, "workspace": runtime.workspace.kind,
        "name": runtime.name, "cluster": runtime.cluster.name,
        "release": runtime.release_id, "replicas": dict(runtime.replicas),
    }


def _fresh(runtime: Runtime) -> Runtime:
    """The runtime as the database has it now (a worker may have changed its release)."""
    return Runtime.objects.select_related(
        "application__project__organization", "workspace", "cluster", "release"
    ).get(pk=runtime.pk)


def _service_names(runtime: Runtime) -> list[str]:
    if runtime.release is None:
        return []
    return list(parse_for(runtime.release, runtime.workspace.kind).services)


def _check_service(runtime: Runtime, service: str) -> None:
    names = _service_names(runtime)
    if service not in names:
        known = ", ".join(names) or "none"
        raise ValidationError({"service": f"runtime {runtime.name} has no service {service!r} (it has: {known})"})


def _executor_call(fn, *args):
    try:
        return fn(*args)
    except ExecutorError as exc:
        raise ValidationError({"cluster": str(exc)}) from None


def scale(user, runtime: Runtime, service: str, replicas: int) -> Runtime:
    """Set a service's replicas (kept until the next deployment, which returns to the spec's)."""
    require_deploy(user, runtime.application, runtime.workspace.kind)
    if not isinstance(replicas, int) or isinstance(replicas, bool) or not 0 <= replicas <= MAX_REPLICAS:
        raise ValidationError({"replicas": f"replicas must be a whole number from 0 to {MAX_REPLICAS}"})
    with transaction.atomic():
        locked = Runtime.objects.select_for_update(of=("self",)).select_related("workspace", "cluster", "release").get(pk=runtime.pk)
        _check_service(locked, service)
        before = _runtime_snapshot(locked)
        wanted = {**locked.replicas, service: replicas}
        doc = parse_for(locked.release, locked.workspace.kind)
        quota.check_quota(locked.workspace, quota.requests_of(doc, locked.cluster, locked.workspace.kind, wanted,
                                                              quota.engine_clusters(locked.workspace, doc)),
                          excluding=locked)
        _executor_call(runtime_executor(locked).scale, runtime_ref(locked), service, replicas)
        locked.replicas = wanted
        locked.save(update_fields=["replicas", "updated"])
        audit.record(user, "scale", locked, before=before, after=_runtime_snapshot(locked))
        push_changed(locked.pk, "scale")
    runtime.replicas = locked.replicas
    return runtime


def restart(user, runtime: Runtime, service: str) -> Runtime:
    """A rolling restart of one service."""
    require_deploy(user, runtime.application, runtime.workspace.kind)
    runtime = _fresh(runtime)
    _check_service(runtime, service)
    _executor_call(runtime_executor(runtime).restart, runtime_ref(runtime), service)
    audit.record(user, "restart", runtime, after={"id": runtime.pk, "service": service})
    push_changed(runtime.pk, "restart")
    return runtime


def _check_job(runtime: Runtime, job: str) -> None:
    doc = parse_for(runtime.release, runtime.workspace.kind) if runtime.release is not None else None
    if doc is None or job not in doc.jobs or not doc.jobs[job].engine:
        raise ValidationError({"job": f"{job!r} is not a job with `engine:` of this runtime's release"})


def job_log(runtime: Runtime, job: str) -> dict:
    """The latest run of the runtime's data engine's job (`engine: spark|flink`): its state and its
    log lines (the caller has checked the user may see the runtime)."""
    runtime = _fresh(runtime)
    _check_job(runtime, job)
    executor = runtime_executor(runtime)
    found, lines = _executor_call(executor.runtime_job_log, runtime_ref(runtime), job)
    return {"job": job, "run": found.name if found.name != job else "", "state": str(found.state),
            "message": found.message, "lines": [line.text for line in lines]}


def cancel_job(user, runtime: Runtime, job: str) -> list[str]:
    """Cancel the runs still going of the runtime's data engine's job; the runs cancelled."""
    require_deploy(user, runtime.application, runtime.workspace.kind)
    runtime = _fresh(runtime)
    _check_job(runtime, job)
    cancelled = _executor_call(runtime_executor(runtime).cancel_runtime_job, runtime_ref(runtime), job)
    audit.record(user, "cancel_job", runtime, after={"id": runtime.pk, "job": job, "runs": cancelled})
    push_changed(runtime.pk, "cancel_job")
    return cancelled


def stop(user, runtime: Runtime) -> Runtime:
    """Scale every service to zero (addons keep running, and their data); deploy again to start it."""
    require_deploy(user, runtime.application, runtime.workspace.kind)
    with transaction.atomic():
        locked = Runtime.objects.select_for_update(of=("self",)).select_related("workspace", "cluster", "release").get(pk=runtime.pk)
        names = _service_names(locked)
        before = _runtime_snapshot(locked)
        executor, ref = runtime_executor(locked), runtime_ref(locked)
        for name in names:
            _executor_call(executor.scale, ref, name, 0)
        locked.replicas = dict.fromkeys(names, 0)
        locked.save(update_fields=["replicas", "updated"])
        audit.record(user, "stop", locked, before=before, after=_runtime_snapshot(locked))
        push_changed(locked.pk, "stop")
    runtime.replicas = locked.replicas
    return runtime


def delete_runtime(user, runtime: Runtime) -> None:
    """Cancel its unfinished deployment, remove everything it has in the cluster, then the row
    (its deployments, history and addon instances with it)."""
    require_deploy(user, runtime.application, runtime.workspace.kind)
    with transaction.atomic():
        locked = Runtime.objects.select_for_update(of=("self",)).select_related("workspace", "cluster").get(pk=runtime.pk)
        for active in locked.deployments.filter(status__in=ACTIVE_STATUSES):
            transition(active, DeploymentStatus.CANCELLED, "the runtime was deleted")
        _executor_call(runtime_executor(locked).destroy, runtime_ref(locked))
        audit.record(user, "delete", locked, before=_runtime_snapshot(locked))
        locked.delete()


def runtime_url(runtime: Runtime) -> str:
    """Where the runtime answers: the address of its first exposed service as the cluster reports
    it now ('' when none is exposed or the cluster cannot be asked)."""
    services = live_status(runtime)["services"]
    for service in sorted(services, key=lambda s: (not s["exposed"], s["name"])):
        if service["exposed"] and service["url"]:
            return service["url"]
    return ""
