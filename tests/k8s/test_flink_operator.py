"""FlinkDeployment and FlinkSessionJob on the ktestenv control plane with the Apache Flink
Kubernetes Operator's real CRDs applied (../shared/crds): the resources the Flink kind writes
are accepted by the CRDs' schemas, created once however often they are submitted, and their
status (written here as the operator would: jobStatus, lifecycleState, error) maps to the
engine's job states. The operator itself cannot run here (no images, no JVM pods under kwok)."""

from __future__ import annotations

import pytest
import yaml
from kubernetes.client import ApiException

from scheduler.base import ExecutorError, JobState
from scheduler.flink.operator import (
    GROUP,
    PLURALS,
    VERSION,
    OperatorJobs,
    flink_deployment,
    flink_session_job,
)
from scheduler.flink.submit import parse_command
from tests.conftest import SHARED_CRDS
from tests.k8s.conftest import wait_for

pytestmark = [pytest.mark.k8s, pytest.mark.conformance]
CRDS = [SHARED_CRDS / "flink-kubernetes-operator" / f"{plural}.flink.apache.org-v1.yml"
        for plural in ("flinkdeployments", "flinksessionjobs")]


@pytest.fixture(scope="module")
def flink_crds(k8s_cluster):
    ext = k8s_cluster.apiextensions
    docs = [yaml.safe_load(path.read_text()) for path in CRDS]
    for doc in docs:
        try:
            ext.create_custom_resource_definition(doc)
        except ApiException as exc:
            if exc.status != 409:
                raise
    for doc in docs:
        wait_for(lambda doc=doc: any(c.type == "Established" and c.status == "True"
                                     for c in ext.read_custom_resource_definition(doc["metadata"]["name"]).status.conditions or []),
                 60, "the Flink CRDs to be established")
    yield
    for doc in docs:
        ext.delete_custom_resource_definition(doc["metadata"]["name"])


def write_status(k8s_cluster, kind: str, namespace: str, name: str, status: dict) -> None:
    """What the operator would write (the status subresource)."""
    k8s_cluster.custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURALS[kind], name, {"status": status})


def test_flink_deployment_application_mode(k8s_cluster, k8s_namespace, flink_crds):
    jobs = OperatorJobs(k8s_cluster.custom)
    sub = parse_command(["flink", "run", "-c", "Count", "-p", "2", "-s", "s3://sp/1", "x.jar", "stream", "t"])
    body = flink_deployment("counter-1", k8s_namespace, sub, "local:///opt/flink/usrlib/count.jar",
                            jobmanager={"cpu": 1, "memory": 1024}, taskmanager={"cpu": 2, "memory": 2048},
                            labels={"dice/app": "stream"})
    assert jobs.submit(body).state is JobState.PENDING  # accepted by the CRD's schema
    assert jobs.submit(body).state is JobState.PENDING  # again: the same one, nothing created twice
    stored = jobs.get("FlinkDeployment", "counter-1", k8s_namespace)
    assert stored["spec"]["job"]["initialSavepointPath"] == "s3://sp/1" and stored["spec"]["job"]["parallelism"] == 2
    assert stored["spec"]["taskManager"]["resource"]["memory"] == "2048m"

    write_status(k8s_cluster, "FlinkDeployment", k8s_namespace, "counter-1",
                 {"lifecycleState": "STABLE", "jobStatus": {"state": "RUNNING", "startTime": "1796000000000"}})
    status = jobs.status("FlinkDeployment", "counter-1", k8s_namespace)
    assert status.state is JobState.RUNNING and status.message == "RUNNING (STABLE)" and status.started == 1796000000
    write_status(k8s_cluster, "FlinkDeployment", k8s_namespace, "counter-1",
                 {"lifecycleState": "FAILED", "jobStatus": {"state": "FAILED"},
                  "error": "org.apache.flink.runtime.JobException: Recovery is suppressed\n\tat ..."})
    status = jobs.status("FlinkDeployment", "counter-1", k8s_namespace)
    assert status.state is JobState.FAILED and "Recovery is suppressed" in status.message and "\tat" not in status.message

    jobs.cancel("FlinkDeployment", "counter-1", k8s_namespace)
    assert jobs.get("FlinkDeployment", "counter-1", k8s_namespace)["spec"]["job"]["state"] == "suspended"
    assert jobs.status("FlinkDeployment", "gone", k8s_namespace).state is JobState.MISSING


def test_flink_session_job(k8s_cluster, k8s_namespace, flink_crds):
    jobs = OperatorJobs(k8s_cluster.custom)
    sub = parse_command(["-c", "Count", "x.jar", "batch", "b"])
    body = flink_session_job("batch-1", k8s_namespace, "session", sub, "https://repo.example/count.jar")
    assert jobs.submit(body).state is JobState.PENDING
    write_status(k8s_cluster, "FlinkSessionJob", k8s_namespace, "batch-1",
                 {"lifecycleState": "STABLE", "jobStatus": {"state": "FINISHED", "jobId": "ab" * 16}})
    assert jobs.status("FlinkSessionJob", "batch-1", k8s_namespace).state is JobState.SUCCEEDED


@pytest.mark.parametrize("build, error", [
    (lambda ns: flink_deployment("x", ns, parse_command(["-py", "a.py"]), "local:///a.py"), "runs jar jobs"),
    (lambda ns: flink_deployment("x", ns, parse_command(["a.jar"]), "/tmp/a.jar"), "from a URI"),
    (lambda ns: flink_deployment("x", ns, parse_command(["a.jar"]), "local:///a.jar", taskmanager={"memory": 64}),
     "at least 512 MiB"),
    (lambda ns: flink_session_job("x", ns, "", parse_command(["a.jar"]), "local:///a.jar"), "names the FlinkDeployment"),
])
def test_bad_jobs_are_refused_before_anything_is_created(k8s_namespace, build, error):
    with pytest.raises(ExecutorError, match=error):
        build(k8s_namespace)
