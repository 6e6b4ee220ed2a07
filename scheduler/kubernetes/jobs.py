"""dice.yml jobs as Kubernetes objects: a Job, a CronJob (`schedule`) or a BroadcastJob (`broadcast`)."""

from __future__ import annotations

import dataclasses
from typing import Any

from diceyml import Job
from scheduler.flink import operator as flink_operator
from scheduler.flink.action import action_params
from scheduler.flink.submit import parse_command
from scheduler.kubernetes.catalog import OPERATORS
from scheduler.kubernetes.context import RenderContext
from scheduler.kubernetes.meta import JOB_LABEL, RenderError, manifest, object_name, short_hash, split_labels
from scheduler.kubernetes.pods import PodBuilder, allocation_of, image_of, main_container
from scheduler.spark import operator as spark_operator
from scheduler.spark.app import from_params

BROADCAST_API = "apps.kruise.io/v1alpha1"


def render_job(ctx: RenderContext, name: str, job: Job) -> tuple[list[dict], list[dict], list[dict]]:
    """(claims, secrets, the job object)."""
    image = image_of(ctx, name, job, "job")
    allocation = allocation_of(ctx, job)
    labels = {**ctx.labels(name, "job"), JOB_LABEL: name}
    user_labels, notes = split_labels(job.labels)
    pod = PodBuilder(ctx, name, job)
    pod.storage(1)
    container = main_container(ctx, name, job, image, allocation, None)
    inits = [pod.extra_container(n, c) for n, c in job.init.items()]
    spec = pod.pod_spec(container, [], inits)
    spec["restartPolicy"] = "Never"
    node_selector = ctx.node_selector("job")
    if node_selector:
        spec["nodeSelector"] = node_selector
    template: dict[str, Any] = {"metadata": {"labels": {**user_labels, **labels}}, "spec": spec}
    if notes or ctx.pod_annotations():
        template["metadata"]["annotations"] = {**notes, **ctx.pod_annotations()}

    if job.broadcast and not ctx.has_operator(*OPERATORS["kruise"].crds, "kruise"):
        return pod.claims, pod.secrets, [broadcast_daemonset(ctx, name, job, template, labels)]
    if job.broadcast:
        body: dict[str, Any] = {
            "template": template,
            "completionPolicy": {"type": "Always"},
            "failurePolicy": {"type": "FailFast", "restartLimit": job.backoff_limit},
        }
        if job.active_deadline:
            body["completionPolicy"]["activeDeadlineSeconds"] = job.active_deadline
        objname = object_name(name, short_hash(body))
        obj = manifest(BROADCAST_API, "BroadcastJob", objname, ctx.namespace, labels, spec=body)
        return pod.claims, pod.secrets, [obj]

    job_spec: dict[str, Any] = {"backoffLimit": job.backoff_limit, "template": template}
    if job.active_deadline:
        job_spec["activeDeadlineSeconds"] = job.active_deadline
    if job.schedule:
        body = {
            "schedule": job.schedule,
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {"metadata": {"labels": labels}, "spec": job_spec},
        }
        return pod.claims, pod.secrets, [manifest("batch/v1", "CronJob", name, ctx.namespace, labels, spec=body)]
    # A Job's template cannot change: a changed job is a new Job (the old one is pruned).
    objname = object_name(name, short_hash(job_spec))
    return pod.claims, pod.secrets, [manifest("batch/v1", "Job", objname, ctx.namespace, labels, spec=job_spec)]


def render_engine_job(ctx: RenderContext, name: str, job: Job) -> list[dict]:
    """An `engine: spark` job on a cluster with the Spark operator: a SparkApplication (run once; a
    changed job is a new one, the old one is pruned) or, with `schedule`, a ScheduledSparkApplication.
    Without the operator nothing is rendered here: the job is the workspace's Spark data cluster's,
    and the driver refuses a group whose engine jobs nothing would run (KubernetesExecutor.apply)."""
    if job.engine == "flink":
        return render_flink_job(ctx, name, job)
    if job.engine != "spark" or not ctx.has_operator(spark_operator.CRD):
        return []
    app = from_params(job.engine_params(), f"jobs.{name}")
    labels = {**ctx.labels(name, "job"), JOB_LABEL: name}
    image = ctx.group.images.get(name) or job.image or ""
    # the variables every workload of the runtime gets, as a Job's container gets them: the file's
    # envs (`((KEY))` through the config Secret), addons' passwords by secretKeyRef, the shared
    # ConfigMap and the console's variables through envFrom
    env = ctx.env(name, allocation_of(ctx, job), {})
    application = spark_operator.render_application(app, name, ctx.namespace, image=image, labels=labels,
                                                    cpu_ratio=ctx.group.overcommit.cpu_ratio, env=env,
                                                    env_from=ctx.env_from())
    if job.schedule:
        application["metadata"]["name"] = object_name(name)
        return [spark_operator.render_scheduled(application, job.schedule)]
    application["metadata"]["name"] = object_name(name, short_hash(application["spec"]))
    return [application]


def render_flink_job(ctx: RenderContext, name: str, job: Job) -> list[dict]:
    """An `engine: flink` job on a cluster with the Flink operator: a FlinkDeployment in
    application mode (flinkConf.kind FlinkJob, the default here: a cluster of the job's own, sized
    by jobManagerResource/taskManagerResource, its JobManager's pod given the job's environment as
    every job's pod is) or a FlinkSessionJob on the session deployment `flinkConf.session`
    (FlinkSession: it runs in that cluster's processes, whose environment is theirs). The job runs
    once to its end (upgradeMode stateless); a changed job is a new resource, the old one pruned."""
    if not ctx.has_operator(flink_operator.DEPLOYMENT_CRD, flink_operator.DEPLOYMENT_GVK):
        return []
    where = f"jobs.{name}"
    params = job.engine_params()
    conf = params.get("flinkConf") or {}
    action = action_params({**params, "flinkConf": {"kind": "FlinkJob", **conf}}, where)
    if action.python:
        raise RenderError(f"{where}: the Flink operator runs jar jobs (a PyFlink program needs an image that "
                          "carries it and a jar that starts it); bind a Flink data cluster to run a .py job")
    uri = flink_operator.jar_uri(action.resource, f"{where}.resource")
    sub = parse_command(action.command(uri)[2:], where)
    sub = dataclasses.replace(sub, conf={str(k): str(v) for k, v in (params.get("properties") or {}).items()})
    labels = {**ctx.labels(name, "job"), JOB_LABEL: name}
    if action.kind == "FlinkSession":
        if not ctx.has_operator(flink_operator.SESSION_JOB_CRD):
            raise RenderError(f"{where}: flinkConf.kind FlinkSession: " +
                              flink_operator.NO_OPERATOR.format(crd=flink_operator.SESSION_JOB_CRD))
        body = flink_operator.flink_session_job(name, ctx.namespace, action.session, sub, uri, labels=labels)
    else:
        body = flink_operator.flink_deployment(
            name, ctx.namespace, sub, uri, image=ctx.group.images.get(name) or job.image or action.image,
            jobmanager=action.resources.get("jobManagerResource"),
            taskmanager=action.resources.get("taskManagerResource"), labels=labels)
        container: dict[str, Any] = {"name": "flink-main-container",
                                     "env": ctx.env(name, allocation_of(ctx, job), {}, None)}
        if ctx.env_from():
            container["envFrom"] = ctx.env_from()
        body["spec"]["podTemplate"] = {"spec": {"containers": [container]}}
    body["spec"]["job"]["upgradeMode"] = "stateless"  # it runs once; a new release is a new resource
    body["metadata"]["name"] = object_name(name, short_hash(body["spec"]))
    return [body]


def engine_jobs_refused(spec, operators) -> str:
    """Why the group's `engine:` jobs cannot run on this cluster (none of them is routed to a data
    cluster by then), or ""."""
    for name, job in sorted(spec.jobs.items()):
        if not job.engine:
            continue
        if job.engine == "flink":
            if flink_operator.DEPLOYMENT_CRD not in operators and flink_operator.DEPLOYMENT_GVK not in operators:
                return (f"job {name!r} has `engine: flink`: bind a flink data cluster to the workspace, or "
                        "install the Apache Flink Kubernetes Operator (CRD "
                        f"{flink_operator.DEPLOYMENT_CRD}) on this cluster")
            if job.schedule:
                return flink_operator.scheduled_refused(name)
            continue
        if job.engine != "spark" or spark_operator.CRD not in operators:
            return (f"job {name!r} has `engine: {job.engine}`: bind a {job.engine} data cluster to the workspace"
                    + (" or install the Kubeflow Spark operator (SparkApplication CRD) on this cluster"
                       if job.engine == "spark" else ""))
        if job.schedule and spark_operator.SCHEDULED_CRD not in operators:
            return (f"job {name!r} has a schedule, and this cluster has no {spark_operator.SCHEDULED_CRD} CRD: "
                    "install the Spark operator's CRDs, or bind a Spark data cluster to the workspace")
    return ""


PAUSE_IMAGE = "registry.k8s.io/pause:3.10"


def broadcast_daemonset(ctx: RenderContext, name: str, job: Job, template: dict, labels: dict) -> dict:
    """`broadcast: true` without OpenKruise: a DaemonSet whose pods run the job once per node, as
    an init container, then hold a pause container (a DaemonSet's pods must keep running). A node's
    pod is ready once its run succeeded; a failed run is retried with the kubelet's back-off (no
    backoff_limit: say so rather than pretend). A changed job is a new DaemonSet (the old one is
    pruned), so each change runs again on every node."""
    spec = dict(template["spec"])
    runner = dict(spec["containers"][0])
    spec["initContainers"] = [*spec.get("initContainers", []), runner]
    pause = {
        "name": "done",
        "image": str(ctx.cluster.config.get("pause_image") or PAUSE_IMAGE),
        "resources": {"requests": {"cpu": "1m", "memory": "4Mi"}, "limits": {"cpu": "10m", "memory": "16Mi"}},
    }
    spec["containers"] = [pause]
    spec["restartPolicy"] = "Always"
    body: dict[str, Any] = {
        "selector": {"matchLabels": {JOB_LABEL: name}},
        "template": {**template, "metadata": {**template["metadata"], "labels": {**template["metadata"]["labels"]}},
                     "spec": spec},
    }
    objname = object_name(name, short_hash(body))
    body["selector"]["matchLabels"]["dice.io/broadcast"] = objname[-8:]
    body["template"]["metadata"]["labels"]["dice.io/broadcast"] = objname[-8:]
    ctx.warnings.append(f"job '{name}': broadcast without OpenKruise runs as DaemonSet {objname} (the job as an "
                        "init container on every node; failed runs are retried, backoff_limit does not apply)")
    return manifest("apps/v1", "DaemonSet", objname, ctx.namespace, labels,
                    {"dice.io/broadcast-of": name}, spec=body)
