"""dice.yml jobs as Kubernetes objects: a Job, a CronJob (`schedule`) or a BroadcastJob (`broadcast`)."""

from __future__ import annotations

from typing import Any

from diceyml import Job
from scheduler.kubernetes.catalog import OPERATORS
from scheduler.kubernetes.context import RenderContext
from scheduler.kubernetes.meta import JOB_LABEL, manifest, object_name, short_hash, split_labels
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


def engine_jobs_refused(spec, operators) -> str:
    """Why the group's `engine:` jobs cannot run on this cluster (none of them is routed to a data
    cluster by then), or ""."""
    for name, job in sorted(spec.jobs.items()):
        if not job.engine:
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
