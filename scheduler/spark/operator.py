"""Spark on Kubernetes through the Kubeflow Spark operator: a SparkApp as a SparkApplication
(sparkoperator.k8s.io/v1beta2), its status from `status.applicationState.state`.

It lives here, beside the other ways a SparkApp runs (app.py, the standalone executor), rather
than in scheduler/kubernetes/: what a Spark application is and how its states map is Spark's
concern; the Kubernetes driver only routes a spark-submit job here and lists the CRD in its
operator catalog (so the capability report says when it is absent)."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from scheduler.base import ExecutorError, ExecutorUnavailable, JobState, JobStatus, dns_label
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
                       cpu_ratio: float = 1.0) -> dict[str, Any]:
    """The SparkApplication of the app: type, cluster mode, image, main file and class, arguments,
    Spark properties (dependencies in `deps`), driver and executors' cores, memory, instances.
    With a cluster's CPU overcommit ratio above 1, the pods request cores / ratio (`coreRequest`,
    at least 100m) and are limited to the cores asked (`coreLimit`), as a service's containers are;
    memory is never overcommitted (a JVM sized to its heap is killed when it lacks it)."""
    conf = dict(app.conf)
    deps = {key: [p for p in conf.pop(prop).split(",") if p] for prop, key in _DEPS.items() if prop in conf}
    labels = dict(labels or {})
    pod = {"labels": labels, "serviceAccount": service_account, **({"env": _env(app.envs)} if app.envs else {})}
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
