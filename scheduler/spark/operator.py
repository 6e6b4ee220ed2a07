"""Spark on Kubernetes through the Kubeflow Spark operator: a SparkApp as a SparkApplication
(sparkoperator.k8s.io/v1beta2), its status from `status.applicationState.state`.

It lives here, beside the other ways a SparkApp runs (app.py, the standalone executor), rather
than in scheduler/kubernetes/: what a Spark application is and how its states map is Spark's
concern; the Kubernetes driver only routes a spark-submit job here and lists the CRD in its
operator catalog (so the capability report says when it is absent)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from kubernetes import client

from scheduler.base import ExecutorError, ExecutorUnavailable, Health, JobState, JobStatus, dns_label
from scheduler.spark.app import SparkApp

GROUP, VERSION, PLURAL, KIND = "sparkoperator.k8s.io", "v1beta2", "sparkapplications", "SparkApplication"
CRD = f"{PLURAL}.{GROUP}"
SCHEDULED_KIND, SCHEDULED_CRD = "ScheduledSparkApplication", f"scheduledsparkapplications.{GROUP}"
SPARK_VERSION = "4.0.1"
DEFAULT_IMAGE = f"apache/spark:{SPARK_VERSION}"  # pulled by the cluster, never by the console

# applicationState.state (the operator's) -> ours; one comment per state where it is not obvious
STATES = {
    "": JobState.PENDING,  # not yet seen by the operator
    "NEW": JobState.PENDING,
    "SUBMITTED": JobState.PENDING,  # spark-submit ran; the driver pod is not running yet
    "PENDING_RERUN": JobState.PENDING,
    "INVALIDATING": JobState.PENDING,  # the spec changed: the operator resubmits
    "UNKNOWN": JobState.PENDING,  # the driver pod's state is unknown for now
    "RUNNING": JobState.RUNNING,
    "SUCCEEDING": JobState.RUNNING,  # the driver ended well; executors are being cleaned up
    "FAILING": JobState.RUNNING,  # the driver failed; a retry may follow
    "COMPLETED": JobState.SUCCEEDED,
    "FAILED": JobState.FAILED,
    "SUBMISSION_FAILED": JobState.FAILED,
}
_DEPS = {"spark.jars": "jars", "spark.files": "files", "spark.submit.pyFiles": "pyFiles"}


def _env(envs: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in sorted(envs.items())]


def _millicores(cores: float) -> str:
    return f"{max(100, int(round(cores * 1000)))}m"


def render_application(app: SparkApp, name: str, namespace: str, *, image: str = "",
                       labels: dict[str, str] | None = None, service_account: str = "spark",
                       cpu_ratio: float = 1.0, env: list[dict[str, Any]] | None = None,
                       env_from: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The SparkApplication of the app: type, cluster mode, image, main file and class, arguments,
    Spark properties (dependencies in `deps`), driver and executors' cores, memory, instances.
    With a cluster's CPU overcommit ratio above 1, the pods request cores / ratio (`coreRequest`,
    at least 100m) and are limited to the cores asked (`coreLimit`), as a service's containers are;
    memory is never overcommitted (a JVM sized to its heap is killed when it lacks it).

    `env` and `env_from` (a container's `env` and `envFrom`, as the runtime's other workloads get
    them: secret values by reference to a Secret, never inline) replace the app's own `envs` on the
    driver and the executors."""
    conf = dict(app.conf)
    deps = {key: [p for p in conf.pop(prop).split(",") if p] for prop, key in _DEPS.items() if prop in conf}
    labels = dict(labels or {})
    env = _env(app.envs) if env is None else env
    pod = {"labels": labels, "serviceAccount": service_account, **({"env": env} if env else {}),
           **({"envFrom": env_from} if env_from else {})}
    spec: dict[str, Any] = {
        "type": app.type, "mode": "cluster", "image": image or DEFAULT_IMAGE, "imagePullPolicy": "IfNotPresent",
        "sparkVersion": SPARK_VERSION, "mainApplicationFile": app.resource, "arguments": list(app.args),
        "sparkConf": conf, "restartPolicy": {"type": "Never"},
        "driver": {**pod, "cores": max(1, int(round(app.driver_cores + 0.4999))), "memory": f"{app.driver_mem}m"},
        "executor": {**pod, "cores": max(1, int(round(app.executor_cores + 0.4999))),
                     "memory": f"{app.executor_mem}m", "instances": app.executor_instances},
    }
    if cpu_ratio > 1:
        for part, cores in (("driver", app.driver_cores), ("executor", app.executor_cores)):
            spec[part]["coreRequest"] = _millicores(cores / cpu_ratio)
            spec[part]["coreLimit"] = _millicores(cores)
    if app.main_class and not app.python:
        spec["mainClass"] = app.main_class
    if app.python:
        spec["pythonVersion"] = "3"
    if deps:
        spec["deps"] = deps
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
            "metadata": {"name": dns_label(name), "namespace": namespace, "labels": labels}, "spec": spec}


def render_scheduled(application: dict[str, Any], schedule: str) -> dict[str, Any]:
    """A ScheduledSparkApplication that makes the application on `schedule` (cron), one run at a
    time (concurrencyPolicy Forbid, as a dice.yml job's CronJob), keeping the last 3 runs of each outcome."""
    meta = application["metadata"]
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": SCHEDULED_KIND,
            "metadata": dict(meta),
            "spec": {"schedule": schedule, "concurrencyPolicy": "Forbid", "successfulRunHistoryLimit": 3,
                     "failedRunHistoryLimit": 3, "template": application["spec"]}}


def application_status(obj: dict[str, Any]) -> JobStatus:
    """Our JobStatus of a SparkApplication as the operator reports it."""
    status = obj.get("status") or {}
    state = (status.get("applicationState") or {}).get("state") or ""
    error = (status.get("applicationState") or {}).get("errorMessage") or ""
    ours = STATES.get(state, JobState.PENDING)
    parts = [f"SparkApplication {state or 'not yet submitted'}"]
    if status.get("sparkApplicationId"):
        parts.append(f"app {status['sparkApplicationId']}")
    if (status.get("driverInfo") or {}).get("webUIAddress"):
        parts.append(f"UI {status['driverInfo']['webUIAddress']}")
    if error:
        parts.append(error)
    exit_code = 0 if ours is JobState.SUCCEEDED else (1 if ours is JobState.FAILED else None)
    return JobStatus(name=obj["metadata"]["name"], state=ours, exit_code=exit_code, message="; ".join(parts))


# On the runtime's Namespace: its `engine: spark` jobs rendered as the operator's resources,
# {job: "once" | "<cron schedule>"}; status() and the status watch read the applications of
# exactly those (no list of the kinds in a namespace without any).
JOBS_ANNOTATION = "dice.io/spark-jobs"
JOB_LABEL = "dice.io/job"  # the job's name on its applications (the operator copies it to scheduled runs)


def jobs_record(manifests: Iterable[dict]) -> dict[str, str]:
    """The JOBS_ANNOTATION of a runtime's rendered objects."""
    out: dict[str, str] = {}
    for obj in manifests:
        if obj.get("apiVersion") != f"{GROUP}/{VERSION}" or obj.get("kind") not in (KIND, SCHEDULED_KIND):
            continue
        job = ((obj.get("metadata") or {}).get("labels") or {}).get(JOB_LABEL)
        if job:
            out[job] = obj["spec"]["schedule"] if obj["kind"] == SCHEDULED_KIND else "once"
    return out


def recorded_jobs(namespace: dict | None) -> dict[str, str]:
    """The JOBS_ANNOTATION of a Namespace ({} when absent or unreadable)."""
    text = (((namespace or {}).get("metadata") or {}).get("annotations") or {}).get(JOBS_ANNOTATION) or "{}"
    try:
        found = json.loads(text)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def _created(obj: dict) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("creationTimestamp") or ""), str(meta.get("name") or "")


def _epoch(stamp: Any) -> float | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def jobs_status(recorded: Mapping[str, str], applications: Iterable[dict]
                ) -> tuple[dict[str, JobStatus], Health, str]:
    """Each recorded job's latest run (its newest SparkApplication: the one of the release deployed,
    or the latest a ScheduledSparkApplication made), and what they make of the runtime's health,
    as a Spark data cluster's jobs do (scheduler/spark/deployed.py): a run-once job that has not
    succeeded yet keeps it progressing, a failed one degrades it (with the operator's
    errorMessage); a scheduled run's outcome is shown and never makes the runtime unhealthy."""
    runs: dict[str, list[dict]] = {}
    for obj in applications:
        job = ((obj.get("metadata") or {}).get("labels") or {}).get(JOB_LABEL)
        if job in recorded:
            runs.setdefault(job, []).append(obj)
    jobs: dict[str, JobStatus] = {}
    health, reasons, failed = Health.HEALTHY, [], []
    for name, schedule in sorted(recorded.items()):
        found = sorted(runs.get(name, []), key=_created)
        if not found:
            if schedule != "once":
                jobs[name] = JobStatus(name=name, state=JobState.PENDING,
                                       message=f"scheduled ({schedule}): no run yet")
                continue
            jobs[name] = JobStatus(name=name, state=JobState.PENDING, message="SparkApplication not created yet")
            if health is Health.HEALTHY:
                health = Health.PROGRESSING
                reasons.append(f"job {name}: SparkApplication not created yet")
            continue
        latest = found[-1]
        status = application_status(latest)
        state = latest.get("status") or {}
        status = JobStatus(name=status.name, state=status.state, exit_code=status.exit_code, message=status.message,
                           started=_epoch(state.get("submissionTime")) or _epoch(_created(latest)[0]),
                           finished=_epoch(state.get("terminationTime")) if status.state.finished else None)
        jobs[name] = status
        if schedule != "once":
            continue
        if status.state in (JobState.FAILED, JobState.CANCELLED):
            health = Health.DEGRADED
            failed.append(f"job {name}: run {status.name} {status.state}: {status.message}")
        elif not status.state.finished and health is Health.HEALTHY:
            health = Health.PROGRESSING
            reasons.append(f"job {name}: run {status.name} {status.state}: {status.message}")
    return jobs, health, "; ".join(failed or reasons)


class SparkApplications:
    """SparkApplications of one Kubernetes cluster (its API client)."""

    def __init__(self, api_client: client.ApiClient):
        self._client = client
        self.custom = client.CustomObjectsApi(api_client)
        self.ext = client.ApiextensionsV1Api(api_client)

    def installed(self) -> bool:
        try:
            self.ext.read_custom_resource_definition(CRD)
            return True
        except self._client.ApiException as exc:
            if exc.status == 404:
                return False
            raise ExecutorError(f"reading the {CRD} CRD: {exc.reason}") from None

    def submit(self, app: SparkApp, name: str, namespace: str, *, image: str = "",
               labels: dict[str, str] | None = None) -> JobStatus:
        if not self.installed():
            raise ExecutorUnavailable(f"job {name!r} is a Spark application, and this cluster has no {CRD} CRD: "
                                      "install the Kubeflow Spark operator, or run it on a Spark data cluster")
        body = render_application(app, name, namespace, image=image, labels=labels)
        try:
            self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        except self._client.ApiException as exc:
            if exc.status != 409:  # 409: it exists already, which is the point of the name
                raise ExecutorError(f"creating SparkApplication {body['metadata']['name']}: {exc.reason}") from None
        return self.status(name, namespace)

    def get(self, name: str, namespace: str) -> dict | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, dns_label(name))
        except self._client.ApiException as exc:
            # 404: none (or no CRD); 403: a token without rights to them has none it could have made
            if exc.status in (403, 404):
                return None
            raise ExecutorError(f"reading SparkApplication {name}: {exc.reason}") from None

    def status(self, name: str, namespace: str) -> JobStatus:
        obj = self.get(name, namespace)
        return JobStatus(name=name, state=JobState.MISSING) if obj is None else application_status(obj)

    def cancel(self, name: str, namespace: str) -> bool:
        """Delete the application (the operator then kills its driver and executors); False if absent."""
        try:
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, dns_label(name))
            return True
        except self._client.ApiException as exc:
            if exc.status in (403, 404):
                return False
            raise ExecutorError(f"deleting SparkApplication {name}: {exc.reason}") from None
