"""dice.yml jobs as Kubernetes objects: a Job, a CronJob (`schedule`) or a BroadcastJob (`broadcast`)."""

from __future__ import annotations

from typing import Any

from diceyml import Job
from scheduler.kubernetes.catalog import OPERATORS
from scheduler.kubernetes.context import RenderContext
from scheduler.kubernetes.meta import JOB_LABEL, RenderError, manifest, object_name, short_hash, split_labels
from scheduler.kubernetes.pods import PodBuilder, allocation_of, image_of, main_container

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
    template: dict[str, Any] = {"metadata": {"labels": {**user_labels, **labels}}, "spec": spec}
    if notes:
        template["metadata"]["annotations"] = notes

    if job.broadcast:
        if not ctx.has_operator(*OPERATORS["kruise"].crds, "kruise"):
            raise RenderError(
                f"job '{name}' has broadcast: true, which needs OpenKruise: install the CRD "
                "broadcastjobs.apps.kruise.io (operator 'kruise')"
            )
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
