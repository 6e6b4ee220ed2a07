"""Flink jobs on Kubernetes through the Apache Flink Kubernetes Operator's custom resources:
FlinkDeployment (application mode: a cluster of the job's own) and FlinkSessionJob (a job on a
FlinkDeployment session cluster). What they are made of (pure functions of the job) and what
their status means; `OperatorJobs` creates them if absent, reads and cancels them through the
Kubernetes API where the operator's CRDs are installed (the operator itself reconciles them:
the console writes the spec and reads the status the operator writes).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from typing import Any

from kubernetes.client.exceptions import ApiException

from scheduler.base import ExecutorError, ExecutorUnavailable, Health, JobState, JobStatus, dns_label
from scheduler.flink.submit import Submission, parse_command

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

    def patch(self, kind: str, name: str, namespace: str, body: dict) -> None:
        """A merge patch of the resource's spec (the operator reconciles the change)."""
        if self.get(kind, name, namespace) is None:
            raise ExecutorError(f"no {kind} {name!r} in namespace {namespace}")
        self._call("patch", self.custom.patch_namespaced_custom_object, GROUP, VERSION, namespace,
                   PLURALS[kind], dns_label(name), body)

    def cancel(self, kind: str, name: str, namespace: str) -> None:
        """Suspend the job (the operator stops it, with a savepoint under upgradeMode savepoint)."""
        if self.get(kind, name, namespace) is not None:
            self._call("patch", self.custom.patch_namespaced_custom_object, GROUP, VERSION, namespace,
                       PLURALS[kind], dns_label(name), {"spec": {"job": {"state": "suspended"}}})


# ---- `engine: flink` services on Kubernetes ------------------------------------------------------

DEPLOYMENT_CRD = f"{PLURALS['FlinkDeployment']}.{GROUP}"
SESSION_JOB_CRD = f"{PLURALS['FlinkSessionJob']}.{GROUP}"
DEPLOYMENT_GVK = f"{GROUP}/{VERSION}/FlinkDeployment"
NO_OPERATOR = ("this Kubernetes cluster has no Apache Flink Kubernetes Operator (CRD {crd} not installed): "
               "install the operator, or bind a Flink data cluster to the workspace")


def scheduled_refused(job: str, workspace: str = "ORG/PROJECT WORKSPACE") -> str:
    """Why a scheduled `engine: flink` job cannot run on Kubernetes through the operator, and what to
    do (`workspace`: the `dice workspace set` arguments naming it, when known). The operator has no
    scheduled resource, and the console's beat fires only the schedules a data cluster keeps: a
    schedule of this cluster's would need a record kept with the cluster (the beat may run on any
    console machine), which does not exist."""
    return (f"job {job!r} has `engine: flink` and a schedule: the Flink operator has no scheduled resource "
            "(nothing like a CronJob or the Spark operator's ScheduledSparkApplication), so on a Kubernetes "
            "cluster nothing would fire it. Bind a Flink data cluster to the workspace, whose schedules the "
            f"console fires (`dice workspace set {workspace} --data-cluster flink-local`, or the workspace's "
            "page), or remove `schedule` to run the job once per release")


def jar_uri(path: str, where: str) -> str:
    """Where the operator's JobManager reads a jar: a URI as given, an absolute path as a file in
    the image (local://). A relative path is a file of the release or the run, which a pod never has."""
    if path.startswith(("local://", "http://", "https://", "s3://", "s3a://", "file://")):
        return path
    if path.startswith("/"):
        return f"local://{path}"
    raise ExecutorError(f"{where}: {path!r} is a file of the console's machine; on Kubernetes the Flink operator "
                        "reads the jar from the image (an absolute path, local:///opt/flink/usrlib/job.jar) "
                        "or a URL (https://, s3://)")


def service_deployment(service: str, namespace: str, sub: Submission, *, parallelism: int, image: str = "",
                       mem: int = 0, cpu: float = 0.0, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """The FlinkDeployment (application mode) of an `engine: flink` service: its job's parallelism
    is the service's replicas, and the operator upgrades it with a savepoint (upgradeMode
    savepoint) when the spec changes: a new release, a scale, a rollback."""
    where = f"service {service!r}"
    body = flink_deployment(service, namespace, dataclasses.replace(sub, parallelism=parallelism),
                            jar_uri(sub.jar, where) if sub.kind == "jar" else sub.python, image=image,
                            taskmanager={"cpu": cpu or 1, "memory": max(mem, 1280) if mem else 1280},
                            labels=labels)
    return body


def deployment_health(obj: dict, sts: dict | None = None) -> tuple[Health, int, int, str]:
    """A service's health from its FlinkDeployment as the operator reports it: RUNNING (every
    task, in a STABLE or DEPLOYED lifecycle) healthy; RESTARTING/FAILING and failures degraded with
    the error's first line; anything else (no status yet, UPGRADING with a savepoint) progressing."""
    desired = int(((obj.get("spec") or {}).get("job") or {}).get("parallelism") or 1)
    status = obj.get("status") or {}
    if not status:
        return Health.PROGRESSING, desired, 0, "waiting for the Flink operator to report status"
    job_state = str((status.get("jobStatus") or {}).get("state") or "")
    lifecycle = str(status.get("lifecycleState") or "")
    error = first_error(str(status.get("error") or ""))
    where = " ".join(p for p in (job_state, f"({lifecycle})" if lifecycle else "") if p)
    if job_state == "RUNNING" and lifecycle in ("STABLE", "DEPLOYED"):
        return Health.HEALTHY, desired, desired, ""
    if job_state in ("RESTARTING", "FAILING", "FAILED", "FINISHED", "CANCELED", "SUSPENDED") or lifecycle in (
            "FAILED", "ROLLED_BACK", "SUSPENDED"):
        return Health.DEGRADED, desired, 0, f"job {where}" + (f": {error}" if error else "")
    return Health.PROGRESSING, desired, 0, f"job {where or 'being deployed'}" + (f": {error}" if error else "")


def first_error(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")[:300]


# ---- the `flink` action on Kubernetes ------------------------------------------------------------

STEP_ANNOTATION = "dice.io/flink-step"  # {"detach": bool, "timeout": seconds or null}


# What the step agent sets beside a step's `envs` that names the step's files on the console's
# machine (agent.runner.step_env): nothing a Flink pod has.
STEP_FILES = ("METAFILE", "WORKDIR")


def step_env(spec: dict, secrets: tuple[str, ...], secret: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The environment of a `flink` step's job on Kubernetes, what a custom-script step sees: the
    step spec's `envs` (the pipeline's, with `${{ configs.* }}` filled, PIPELINE_ID, DICE_*) and
    PIPELINE_TASK_ALIAS/PIPELINE_TASK_RUN_ID, as the container's `env`; a variable whose value holds
    one of `secrets` (what the run masks) is read from the Secret `secret` (key `env.<NAME>`), as a
    step's Job reads it, never written in the resource. (the env list, the Secret's data)"""
    given = {**{str(k): str(v) for k, v in (spec.get("envs") or {}).items() if k not in STEP_FILES},
             "PIPELINE_TASK_ALIAS": str(spec.get("alias") or ""), "PIPELINE_TASK_RUN_ID": str(spec.get("task_run") or "")}
    env: list[dict[str, Any]] = []
    data: dict[str, str] = {}
    for key, value in sorted(given.items()):
        if any(s and s in value for s in secrets):
            data[f"env.{key}"] = value
            env.append({"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": f"env.{key}"}}})
        else:
            env.append({"name": key, "value": value})
    return env, data


def step_resource(name: str, namespace: str, action: Any, *, timeout: int | None,
                  labels: dict[str, str] | None = None, env: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The `flink` action's job as the operator's resource: a FlinkJob is a FlinkDeployment of its
    own (application mode, sized by jobManagerResource/taskManagerResource; its JobManager, which
    runs main(), and TaskManagers given `env`: step_env's), a FlinkSession a FlinkSessionJob on the
    session deployment `flinkConf.session` (whose processes have their own environment).
    `action` is a FlinkAction."""
    where = f"step {name}"
    if action.python:
        raise ExecutorError(f"{where}: the Flink operator runs jar jobs (a PyFlink program needs an image that "
                            "carries it and a jar that starts it)")
    uri = jar_uri(action.resource, f"{where}: resource")
    sub = parse_command(action.command(uri)[2:], f"{where}: params")
    labels = dict(labels or {})
    if action.kind == "FlinkSession":
        body = flink_session_job(name, namespace, action.session, sub, uri, labels=labels)
    else:
        body = flink_deployment(name, namespace, sub, uri, image=action.image,
                                jobmanager=action.resources.get("jobManagerResource"),
                                taskmanager=action.resources.get("taskManagerResource"), labels=labels)
        if env:
            body["spec"]["podTemplate"] = {"spec": {"containers": [{"name": "flink-main-container", "env": env}]}}
    body["spec"]["job"]["upgradeMode"] = "stateless"  # a step's job is not upgraded: it runs once
    body["metadata"]["annotations"] = {STEP_ANNOTATION: json.dumps({"detach": action.detach, "timeout": timeout})}
    return body


def step_status(name: str, obj: dict) -> tuple[JobStatus, bool]:
    """The step's status from its resource, and whether its time is up (the caller suspends it):
    a detached step has succeeded once its job runs."""
    status = status_of(name, obj)
    try:
        options = json.loads(((obj.get("metadata") or {}).get("annotations") or {}).get(STEP_ANNOTATION) or "{}")
    except ValueError:
        options = {}
    if options.get("detach") and status.state is JobState.RUNNING and "RUNNING" in status.message:
        return JobStatus(name=name, state=JobState.SUCCEEDED, exit_code=0, message=status.message), False
    created = _timestamp((obj.get("metadata") or {}).get("creationTimestamp"))
    timeout = options.get("timeout")
    if timeout and created and not status.state.finished and time.time() - created > float(timeout):
        return JobStatus(name=name, state=JobState.FAILED, exit_code=124,
                         message=f"timed out after {timeout}s: the job was suspended ({status.message})"), True
    return status, False


def _timestamp(text: Any) -> float | None:
    try:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
