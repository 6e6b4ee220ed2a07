"""FlinkDeployment and FlinkSessionJob on the ktestenv control plane with the Apache Flink
Kubernetes Operator's real CRDs applied (../shared/crds): the resources the Flink kind writes
are accepted by the CRDs' schemas, created once however often they are submitted, and their
status (written here as the operator would: jobStatus, lifecycleState, error) maps to the
engine's job states. The operator itself cannot run here (no images, no JVM pods under kwok)."""

from __future__ import annotations

import base64
import json

import pytest
import yaml
from kubernetes.client import ApiException

from diceyml import parse_dice_yml
from scheduler.base import (
    ClusterRef,
    ExecutorError,
    ExecutorUnavailable,
    Health,
    JobState,
    RuntimeRef,
    ServiceGroup,
    StepJob,
)
from scheduler.flink.operator import (
    GROUP,
    PLURALS,
    VERSION,
    OperatorJobs,
    flink_deployment,
    flink_session_job,
)
from scheduler.flink.submit import parse_command
from scheduler.kubernetes.driver import KubernetesExecutor
from tests.conftest import SHARED_CRDS
from tests.k8s.conftest import wait_for

pytestmark = [pytest.mark.k8s, pytest.mark.conformance]
CRDS = [SHARED_CRDS / "flink-kubernetes-operator" / f"{plural}.flink.apache.org-v1.yml"
        for plural in ("flinkdeployments", "flinksessionjobs")]


SERVICE = """
version: "2.0"
services:
  counter:
    engine: flink
    image: registry.example/stream:{tag}
    cmd: flink run -c Count /opt/flink/usrlib/count.jar stream {tag}
    resources: {{cpu: 1, mem: 2048}}
    deployments:
      replicas: {replicas}
{more}"""
WEB = """  web:
    image: registry.example/web:1
    cmd: sleep 600
"""


@pytest.fixture
def executor(k8s_cluster):
    return KubernetesExecutor(ClusterRef("ktest", "kubernetes", config={"kubeconfig": k8s_cluster.kubeconfig}))


def group(runtime: RuntimeRef, tag: str = "r1", replicas: int = 1, more: str = WEB) -> ServiceGroup:
    return ServiceGroup(runtime, parse_dice_yml(SERVICE.format(tag=tag, replicas=replicas, more=more),
                                                workspace="DEV"), release=tag)


def flink_step(namespace: str, params: dict, timeout: int | None = None) -> StepJob:
    return StepJob(name="p7-count-1", namespace=namespace, timeout=timeout,
                   spec={"type": "flink", "alias": "count", "params": params, "workdir": "/p/runs/7/dirs/count",
                         "dirs": {"build": "/p/runs/7/dirs/build"}},
                   labels={"dice.io/pipeline-run": "7"})


def test_without_the_operator_flink_services_and_actions_are_refused(executor):
    """First in the module: the CRDs are not installed yet."""
    report = executor.check()
    assert report["features"]["engines"] == []
    assert "Apache Flink Kubernetes Operator (FlinkDeployment, FlinkSessionJob)" in report["missing_operators"]
    runtime = RuntimeRef("acme", "shop", "nocrd", "DEV", "main")
    with pytest.raises(ExecutorError, match="no Apache Flink Kubernetes Operator \\(CRD flinkdeployments.flink.apache.org"):
        executor.apply(group(runtime))
    with pytest.raises(ExecutorUnavailable, match="CRD flinkdeployments.flink.apache.org not installed"):
        executor.start_step(flink_step("default", {"resource": "local:///opt/flink/usrlib/count.jar",
                                                   "flinkConf": {"kind": "FlinkJob"}}))


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


def test_an_engine_flink_service_is_a_flink_deployment(k8s_cluster, executor, flink_crds):
    runtime = RuntimeRef("acme", "shop", "stream", "DEV", "main")
    ns = runtime.namespace
    jobs = OperatorJobs(k8s_cluster.custom)
    wait_for(lambda: executor.check()["features"]["engines"] == ["flink"] or None, 30, "the check to find the operator")
    try:
        executor.apply(group(runtime))
        body = jobs.get("FlinkDeployment", "counter", ns)
        job = body["spec"]["job"]
        assert (job["jarURI"], job["entryClass"], job["args"], job["parallelism"], job["upgradeMode"]) == (
            "local:///opt/flink/usrlib/count.jar", "Count", ["stream", "r1"], 1, "savepoint")
        assert body["spec"]["image"] == "registry.example/stream:r1"
        assert body["spec"]["taskManager"]["resource"] == {"cpu": 1.0, "memory": "2048m"}
        status = executor.status(runtime)
        assert status.services["counter"].health is Health.PROGRESSING  # nothing from the operator yet
        assert "web" in status.services and "counter" not in status.addons
        write_status(k8s_cluster, "FlinkDeployment", ns, "counter",
                     {"lifecycleState": "STABLE", "jobStatus": {"state": "RUNNING"}})
        counter = wait_for(lambda: (s := executor.status(runtime).services["counter"]).health is Health.HEALTHY and s,
                           30, "the service to be healthy")
        assert counter.ready == 1

        # a new release: the spec changes (the operator upgrades the job with a savepoint)
        executor.apply(group(runtime, tag="r2"))
        assert jobs.get("FlinkDeployment", "counter", ns)["spec"]["job"]["args"] == ["stream", "r2"]
        # scale: the parallelism
        executor.scale(runtime, "counter", 3)
        assert jobs.get("FlinkDeployment", "counter", ns)["spec"]["job"]["parallelism"] == 3
        executor.restart(runtime, "counter")
        assert jobs.get("FlinkDeployment", "counter", ns)["spec"]["restartNonce"] > 0
        write_status(k8s_cluster, "FlinkDeployment", ns, "counter",
                     {"lifecycleState": "DEPLOYED", "jobStatus": {"state": "RESTARTING"},
                      "error": "java.lang.NumberFormatException: For input string: \"x\"\n\tat ..."})
        counter = wait_for(lambda: (s := executor.status(runtime).services["counter"]).health is Health.DEGRADED and s,
                           30, "the service to be degraded")
        assert "RESTARTING" in counter.reason and "NumberFormatException" in counter.reason and "\tat" not in counter.reason

        # rollback to a release without the service: its FlinkDeployment is pruned
        executor.apply(ServiceGroup(runtime, parse_dice_yml("version: '2.0'\nservices:\n" + WEB, workspace="DEV")))
        wait_for(lambda: jobs.get("FlinkDeployment", "counter", ns) is None or None, 30, "the FlinkDeployment pruned")
    finally:
        executor.destroy(runtime)


def test_the_flink_action_is_an_operator_resource(k8s_cluster, executor, k8s_namespace, flink_crds):
    jobs = OperatorJobs(k8s_cluster.custom)
    params = {"resource": "https://repo.example/count.jar", "class": "Count", "args": ["batch", "b"],
              "flinkConf": {"kind": "FlinkJob", "parallelism": 2, "taskManagerResource": {"cpu": 2, "memory": 2048}}}
    step = flink_step(k8s_namespace, params, timeout=600)
    assert executor.start_step(step).state is JobState.PENDING
    assert executor.start_step(step).state is JobState.PENDING  # again: the same one
    body = jobs.get("FlinkDeployment", step.name, k8s_namespace)
    assert body["spec"]["job"]["parallelism"] == 2 and body["spec"]["taskManager"]["resource"]["memory"] == "2048m"
    write_status(k8s_cluster, "FlinkDeployment", k8s_namespace, step.name,
                 {"lifecycleState": "STABLE", "jobStatus": {"state": "FINISHED"}})
    status = executor.job_status(step.name, k8s_namespace)
    assert status.state is JobState.SUCCEEDED
    result = executor.step_result(step.name, k8s_namespace, status)
    assert result.exit_code == 0 and result.outputs == {"kind": "FlinkDeployment", "state": "FINISHED"}
    assert "FINISHED" in next(iter(executor.job_logs(step.name, k8s_namespace))).text

    # a session job on the session deployment flinkConf.session; cancel suspends it
    session = flink_step(k8s_namespace, {**params, "flinkConf": {"kind": "FlinkSession", "session": "shared"}})
    session = StepJob(**{**session.__dict__, "name": "p7-session-1"})
    executor.start_step(session)
    assert jobs.get("FlinkSessionJob", "p7-session-1", k8s_namespace)["spec"]["deploymentName"] == "shared"
    executor.cancel_job("p7-session-1", k8s_namespace)
    assert jobs.get("FlinkSessionJob", "p7-session-1", k8s_namespace)["spec"]["job"]["state"] == "suspended"


def test_the_flink_actions_job_sees_what_a_script_step_sees_and_no_secret_is_in_the_resource(
        k8s_cluster, executor, k8s_namespace, flink_crds):
    """The JobManager (which runs main()) and TaskManagers of a `flink` step's FlinkDeployment get a
    custom-script step's variables: the pipeline's envs, PIPELINE_*, DICE_*; one holding a secret
    the run masks is read from a Secret owned by the resource, never written in it."""
    jobs = OperatorJobs(k8s_cluster.custom)
    params = {"resource": "https://repo.example/count.jar", "class": "Count", "flinkConf": {"kind": "FlinkJob"}}
    step = flink_step(k8s_namespace, params)
    envs = {"FROM_PIPELINE": "pipeline", "DB_URL": "postgres://u:s3cret-value@db/x", "PIPELINE_ID": "7",
            "DICE_WORKSPACE": "DEV"}
    step = StepJob(**{**step.__dict__, "secrets": ("s3cret-value",),
                      "spec": {**step.spec, "envs": envs, "task_run": 70, "mask": ["s3cret-value"]}})
    executor.start_step(step)
    body = jobs.get("FlinkDeployment", step.name, k8s_namespace)
    assert "s3cret-value" not in json.dumps(body)
    container = body["spec"]["podTemplate"]["spec"]["containers"][0]
    assert container["name"] == "flink-main-container"
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    secret = f"{step.name}-env"
    assert env == {"FROM_PIPELINE": "pipeline", "PIPELINE_ID": "7", "DICE_WORKSPACE": "DEV",
                   "PIPELINE_TASK_ALIAS": "count", "PIPELINE_TASK_RUN_ID": "70",
                   "DB_URL": {"secretKeyRef": {"name": secret, "key": "env.DB_URL"}}}
    held = k8s_cluster.core.read_namespaced_secret(secret, k8s_namespace)
    assert base64.b64decode(held.data["env.DB_URL"]).decode() == envs["DB_URL"]
    assert [(o.kind, o.name, o.uid) for o in held.metadata.owner_references] == [
        ("FlinkDeployment", step.name, body["metadata"]["uid"])]


@pytest.mark.parametrize("params, error", [
    ({"resource": "/opt/flink/usrlib/count.jar", "flinkConf": {"kind": "FlinkJob"}}, None),  # a path in the image
    ({"resource": "count.jar", "flinkConf": {"kind": "FlinkJob"}}, "a file of the console's machine"),
    ({"resource": "/p/runs/7/dirs/build/count.jar"}, "in the run's directories, which the Flink operator's pods"),
    ({"resource": "job.py", "flinkConf": {"kind": "FlinkJob"}}, "runs jar jobs"),
    ({"resource": "local:///a.jar", "flinkConf": {"kind": "FlinkSession"}}, "names the FlinkDeployment"),
])
def test_flink_actions_the_operator_cannot_run_are_refused(executor, k8s_namespace, flink_crds, params, error):
    step = flink_step(k8s_namespace, params)
    if error is None:
        assert executor.start_step(step).state is JobState.PENDING
        return
    with pytest.raises(ExecutorError, match=error):
        executor.start_step(step)


# ---- dice.yml jobs with `engine: flink` ------------------------------------------------------------

JOB_SPEC = """
version: "2.0"
envs:
  FROM_FILE: file-value
jobs:
  wordcount:
    engine: flink
    image: registry.example/batch:{tag}
    resource: local:///opt/flink/usrlib/count.jar
    class: Count
    args: [batch, {tag}]
    properties:
      restart-strategy.type: none
    flinkConf:
      parallelism: 2
      taskManagerResource: {{cpu: 1, memory: 2048}}
    envs:
      TOKEN: "((BATCH_TOKEN))"
"""


def job_group(runtime: RuntimeRef, tag: str = "r1") -> ServiceGroup:
    return ServiceGroup(runtime, parse_dice_yml(JOB_SPEC.format(tag=tag), workspace="DEV"), release=tag,
                        secret_configs={"BATCH_TOKEN": "t0ken"}, variables={"FROM_CONSOLE": "console-value"})


def test_an_engine_flink_job_is_a_flink_deployment_run_to_its_end(k8s_cluster, executor, flink_crds):
    runtime = RuntimeRef("acme", "shop", "batch", "DEV", "main")
    ns = runtime.namespace
    wait_for(lambda: executor.check()["features"]["engines"] == ["flink"] or None, 30, "the check to find the operator")
    try:
        executor.apply(job_group(runtime))
        found = k8s_cluster.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURALS["FlinkDeployment"])["items"]
        assert len(found) == 1
        body = found[0]
        name = body["metadata"]["name"]
        assert name.startswith("wordcount-") and body["metadata"]["labels"]["dice.io/job"] == "wordcount"
        job = body["spec"]["job"]
        assert (job["jarURI"], job["entryClass"], job["args"], job["parallelism"], job["upgradeMode"]) == (
            "local:///opt/flink/usrlib/count.jar", "Count", ["batch", "r1"], 2, "stateless")
        assert body["spec"]["image"] == "registry.example/batch:r1"
        assert body["spec"]["flinkConfiguration"] == {"restart-strategy.type": "none"}
        assert body["spec"]["taskManager"]["resource"]["memory"] == "2048m"
        # the job's main() runs in the JobManager: its pod gets the env every job's pod gets
        container = body["spec"]["podTemplate"]["spec"]["containers"][0]
        assert container["name"] == "flink-main-container"
        env = {e["name"]: e for e in container["env"]}
        assert env["FROM_FILE"]["value"] == "file-value" and env["DICE_RUNTIME_NAME"]["value"] == "main"
        assert "valueFrom" in env["TOKEN"] and "t0ken" not in str(env["TOKEN"])  # a config: from a Secret
        assert {"configMapRef": {"name": "dice-vars"}} in container["envFrom"]

        status = executor.status(runtime)
        assert status.jobs["wordcount"].state is JobState.PENDING and status.health is Health.PROGRESSING
        write_status(k8s_cluster, "FlinkDeployment", ns, name,
                     {"lifecycleState": "STABLE", "jobStatus": {"state": "RUNNING"}})
        wait_for(lambda: executor.status(runtime).jobs["wordcount"].state is JobState.RUNNING or None, 30,
                 "the run to be running")
        write_status(k8s_cluster, "FlinkDeployment", ns, name,
                     {"lifecycleState": "STABLE", "jobStatus": {"state": "FINISHED"}})
        status = wait_for(lambda: (s := executor.status(runtime)).jobs["wordcount"].state is JobState.SUCCEEDED and s,
                          30, "the run to succeed")
        assert status.health is Health.HEALTHY and status.jobs["wordcount"].name == name

        # applying the same release again keeps the run; a new release is a new run, the old one pruned
        executor.apply(job_group(runtime))
        assert [o["metadata"]["name"] for o in k8s_cluster.custom.list_namespaced_custom_object(
            GROUP, VERSION, ns, PLURALS["FlinkDeployment"])["items"]] == [name]
        executor.apply(job_group(runtime, tag="r2"))
        names = [o["metadata"]["name"] for o in k8s_cluster.custom.list_namespaced_custom_object(
            GROUP, VERSION, ns, PLURALS["FlinkDeployment"])["items"]]
        assert len(names) == 1 and names[0] != name
        write_status(k8s_cluster, "FlinkDeployment", ns, names[0],
                     {"lifecycleState": "STABLE", "jobStatus": {"state": "FAILED"},
                      "error": "java.lang.RuntimeException: boom\n\tat Count.main"})
        status = wait_for(lambda: (s := executor.status(runtime)).jobs["wordcount"].state is JobState.FAILED and s,
                          30, "the run to fail")
        assert status.health is Health.DEGRADED and "boom" in status.reason

        # cancel: the operator suspends it
        executor.cancel_job(names[0], ns)
        assert OperatorJobs(k8s_cluster.custom).get("FlinkDeployment", names[0], ns)["spec"]["job"]["state"] == "suspended"
    finally:
        executor.destroy(runtime)


@pytest.mark.parametrize("change, error", [
    ("    schedule: \"0 2 * * *\"\n", "the Flink operator has no scheduled resource"),
    ("", "runs jar jobs"),
])
def test_flink_jobs_the_operator_cannot_run_are_refused_before_anything_is_applied(
        k8s_cluster, executor, flink_crds, change, error):
    runtime = RuntimeRef("acme", "shop", "refused", "DEV", "main")
    spec = JOB_SPEC.format(tag="r1") + change
    if not change:
        spec = spec.replace("local:///opt/flink/usrlib/count.jar", "local:///opt/flink/usrlib/job.py").replace(
            "    class: Count\n", "")
    group_ = ServiceGroup(runtime, parse_dice_yml(spec, workspace="DEV"), release="r1",
                          secret_configs={"BATCH_TOKEN": "t"})
    with pytest.raises(ExecutorError, match=error):
        executor.apply(group_)
    with pytest.raises(ApiException) as gone:
        k8s_cluster.core.read_namespace(runtime.namespace)
    assert gone.value.status == 404
