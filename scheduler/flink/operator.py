"""Flink jobs on Kubernetes through the Apache Flink Kubernetes Operator's custom resources:
FlinkDeployment (application mode: a cluster of the job's own) and FlinkSessionJob (a job on a
FlinkDeployment session cluster). What they are made of (pure functions of the job) and what
their status means; `OperatorJobs` creates them if absent, reads and cancels them through the
Kubernetes API where the operator's CRDs are installed (the operator itself reconciles them:
the console writes the spec and reads the status the operator writes).
"""

from __future__ import annotations

from typing import Any

from kubernetes.client.exceptions import ApiException

from scheduler.base import ExecutorError, ExecutorUnavailable, JobState, JobStatus, dns_label
from scheduler.flink.submit import Submission

GROUP, VERSION = "flink.apache.org", "v1beta1"
PLURALS = {"FlinkDeployment": "flinkdeployments", "FlinkSessionJob": "flinksessionjobs"}
FLINK_VERSION = "v2_2"  # the newest the operator's CRD names; the image decides what really runs
DEFAULT_IMAGE = "flink:2.2"

# jobStatus.state (Flink's job states, as the operator copies them) -> the engine's
JOB_STATES = {
    "CREATED": JobState.PENDING, "INITIALIZING": JobState.PENDING, "RECONCILING": JobState.PENDING,
    "RUNNING": JobState.RUNNING, "RESTARTING": JobState.RUNNING, "FAILING": JobState.RUNNING,
    "CANCELLING": JobState.RUNNING, "FINISHED": JobState.SUCCEEDED, "FAILED": JobState.FAILED,
    "CANCELED": JobState.CANCELLED, "SUSPENDED": JobState.CANCELLED,
}
# lifecycleState, when the job has no state yet or the resource itself failed
LIFECYCLE = {
    "CREATED": JobState.PENDING, "UPGRADING": JobState.PENDING, "DEPLOYED": JobState.RUNNING,
    "STABLE": JobState.RUNNING, "ROLLING_BACK": JobState.RUNNING, "ROLLED_BACK": JobState.FAILED,
    "FAILED": JobState.FAILED, "SUSPENDED": JobState.CANCELLED, "DELETING": JobState.CANCELLED,
    "DELETED": JobState.MISSING,
}


def _resources(given: dict | None, default_mem: int) -> dict[str, Any]:
    given = given or {}
    try:
        cpu = float(given.get("cpu") or 1)
        memory = int(given.get("memory") or given.get("mem") or default_mem)
    except (TypeError, ValueError):
        raise ExecutorError(f"a Flink process's resource is {{cpu, memory (MiB)}}, not {given!r}")
    if cpu <= 0 or memory < 512:
        raise ExecutorError(f"a Flink process needs cpu > 0 and at least 512 MiB, not {given!r}")
    return {"cpu": cpu, "memory": f"{memory}m"}


def _job(sub: Submission, jar_uri: str) -> dict[str, Any]:
    if sub.kind != "jar":
        raise ExecutorError("the Flink operator runs jar jobs (a PyFlink program needs an image that carries it)")
    if not jar_uri.startswith(("local://", "http://", "https://", "s3://", "file://")):
        raise ExecutorError(f"the Flink operator reads the jar from a URI the cluster can reach (local:// in "
                            f"the image, http(s)://, s3://), not {jar_uri!r}")
    job: dict[str, Any] = {"jarURI": jar_uri, "args": list(sub.args), "state": "running", "upgradeMode": "savepoint"}
    if sub.entry_class:
        job["entryClass"] = sub.entry_class
    if sub.parallelism:
        job["parallelism"] = sub.parallelism
    if sub.savepoint:
        job["initialSavepointPath"] = sub.savepoint
        job["allowNonRestoredState"] = sub.allow_non_restored
    return job


def flink_deployment(name: str, namespace: str, sub: Submission, jar_uri: str, *, image: str = "",
                     jobmanager: dict | None = None, taskmanager: dict | None = None,
                     labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A FlinkDeployment in application mode: the job with a JobManager and TaskManagers of its own."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "FlinkDeployment",
        "metadata": {"name": dns_label(name), "namespace": namespace, "labels": dict(labels or {})},
        "spec": {
            "image": image or DEFAULT_IMAGE, "flinkVersion": FLINK_VERSION, "serviceAccount": "flink",
            "flinkConfiguration": {str(k): str(v) for k, v in sub.conf.items()},
            "jobManager": {"resource": _resources(jobmanager, 1024)},
            "taskManager": {"resource": _resources(taskmanager, 1280)},
            "job": _job(sub, jar_uri),
        },
    }


def flink_session_job(name: str, namespace: str, session: str, sub: Submission, jar_uri: str, *,
                      labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A FlinkSessionJob: the job on the session cluster FlinkDeployment `session`."""
    if not session:
        raise ExecutorError("a FlinkSessionJob names the FlinkDeployment session cluster it runs on")
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "FlinkSessionJob",
        "metadata": {"name": dns_label(name), "namespace": namespace, "labels": dict(labels or {})},
        "spec": {"deploymentName": session, "flinkConfiguration": {str(k): str(v) for k, v in sub.conf.items()},
                 "job": _job(sub, jar_uri)},
    }


def status_of(name: str, obj: dict | None) -> JobStatus:
    """The job's state from the resource's status as the operator writes it: jobStatus.state
    first, the lifecycleState when there is no job state yet, status.error as the message."""
    if obj is None:
        return JobStatus(name=name, state=JobState.MISSING)
    status = obj.get("status") or {}
    job = status.get("jobStatus") or {}
    lifecycle = str(status.get("lifecycleState") or "")
    error = str(status.get("error") or "")
    job_state = str(job.get("state") or "")
    if lifecycle == "FAILED" or (error and not job_state):
        state = JobState.FAILED
    elif job_state in JOB_STATES:
        state = JOB_STATES[job_state]
    else:
        state = LIFECYCLE.get(lifecycle, JobState.PENDING)
    message = " ".join(part for part in (job_state, f"({lifecycle})" if lifecycle else "") if part)
    if error:
        message = f"{message}: {error.splitlines()[0][:300]}".lstrip(": ")
    started = job.get("startTime")
    return JobStatus(name=name, state=state, message=message,
                     started=int(started) / 1000 if str(started or "").isdigit() else None,
                     exit_code=0 if state is JobState.SUCCEEDED else 1 if state is JobState.FAILED else None)


class OperatorJobs:
    """Create-if-absent, read and cancel the operator's resources (`custom` is a
    kubernetes.client.CustomObjectsApi)."""

    def __init__(self, custom: Any):
        self.custom = custom

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            if exc.status == 404 and what != "create":
                return None
            if exc.status == 404:
                raise ExecutorUnavailable("the Flink operator's CRDs are not installed on this cluster")
            raise ExecutorError(f"{what} of a Flink resource: HTTP {exc.status}: {exc.reason}")

    def get(self, kind: str, name: str, namespace: str) -> dict | None:
        return self._call("read", self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace,
                          PLURALS[kind], dns_label(name))

    def submit(self, body: dict) -> JobStatus:
        kind, meta = body["kind"], body["metadata"]
        existing = self.get(kind, meta["name"], meta["namespace"])
        if existing is None:
            self._call("create", self.custom.create_namespaced_custom_object, GROUP, VERSION, meta["namespace"],
                       PLURALS[kind], body)
            existing = body
        return status_of(meta["name"], existing)

    def status(self, kind: str, name: str, namespace: str) -> JobStatus:
        return status_of(name, self.get(kind, name, namespace))

    def cancel(self, kind: str, name: str, namespace: str) -> None:
        """Suspend the job (the operator stops it, with a savepoint under upgradeMode savepoint)."""
        if self.get(kind, name, namespace) is not None:
            self._call("patch", self.custom.patch_namespaced_custom_object, GROUP, VERSION, namespace,
                       PLURALS[kind], dns_label(name), {"spec": {"job": {"state": "suspended"}}})
