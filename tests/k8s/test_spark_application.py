"""A spark-submit job on a Kubernetes cluster becomes a SparkApplication (sparkoperator.k8s.io/
v1beta2) where the CRD is installed; its status is the operator's applicationState, written here
as the operator would (the operator itself cannot be built on these machines); without the CRD
the job is refused saying so, and the capability report names the operator as missing."""

from __future__ import annotations

import contextlib
import json
import threading
import time

import pytest
import yaml
from kubernetes.client.rest import ApiException

from scheduler.base import ClusterRef, ExecutorUnavailable, JobSpec, JobState
from scheduler.kubernetes.driver import KubernetesExecutor
from scheduler.spark.app import SparkApp, job_command
from scheduler.spark.operator import CRD, GROUP, PLURAL, VERSION
from tests.conftest import DATA, SHARED_CRDS

from .conftest import K8sCluster, wait_for

pytestmark = pytest.mark.k8s


def _crd() -> dict:
    """The operator's published CRD when the design folder has it (its schema checks what we
    render), else this project's minimal one."""
    published = SHARED_CRDS / "spark-operator" / "sparkoperator.k8s.io_sparkapplications.yaml"
    path = published if published.is_file() else DATA / "crds" / "spark-operator.yaml"
    return next(d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "CustomResourceDefinition")


def _remove_crd(k8s: K8sCluster) -> None:
    try:
        k8s.apiextensions.delete_custom_resource_definition(CRD)
    except ApiException as exc:
        if exc.status != 404:
            raise
    wait_for(lambda: CRD not in {c.metadata.name for c in k8s.apiextensions.list_custom_resource_definition().items},
             60, "the CRD to be removed")


@pytest.fixture
def executor(k8s_cluster):
    ex = KubernetesExecutor(ClusterRef("ktest", "kubernetes", config={"kubeconfig": k8s_cluster.kubeconfig}))
    yield ex


APP = SparkApp(resource="local:///opt/spark/examples/jars/spark-examples.jar", main_class="org.apache.spark.examples.SparkPi",
               args=("100",), conf={"spark.jars": "https://repo/a.jar,https://repo/b.jar", "spark.x": "1"},
               envs={"TZ": "UTC"}, driver_mem=1024, executor_mem=512, executor_instances=2, executor_cores=2)


def test_without_the_crd_the_job_is_refused_and_the_report_says_so(k8s_cluster, executor, k8s_namespace):
    _remove_crd(k8s_cluster)
    with pytest.raises(ExecutorUnavailable, match="no sparkapplications.sparkoperator.k8s.io CRD"):
        executor.run_job(JobSpec(name="pi", namespace=k8s_namespace, command=job_command(APP)))
    report = executor.check()
    assert "Kubeflow Spark operator (SparkApplication)" in report["missing_operators"]
    assert executor.job_status("pi", k8s_namespace).state is JobState.MISSING


def test_spark_submit_job_becomes_a_spark_application(k8s_cluster, executor, k8s_namespace):
    _remove_crd(k8s_cluster)
    k8s_cluster.apiextensions.create_custom_resource_definition(_crd())
    try:
        wait_for(lambda: executor.check()["operators"] and any(
            o["key"] == "spark-operator" and o["installed"] for o in executor.check()["operators"]), 60,
            "the check to find the operator")
        job = JobSpec(name="pi", namespace=k8s_namespace, command=job_command(APP), envs=APP.envs, image="apache/spark:4.0.1",
                      labels={"dice.io/pipeline-run": "7"})
        status = wait_for(lambda: _created(executor, job), 30, "the SparkApplication to be accepted")
        assert status.state is JobState.PENDING and "not yet submitted" in status.message
        assert executor.run_job(job).state is JobState.PENDING  # again: the same application
        custom = k8s_cluster.custom
        obj = custom.get_namespaced_custom_object(GROUP, VERSION, k8s_namespace, PLURAL, "pi")
        spec = obj["spec"]
        assert (spec["type"], spec["mode"], spec["mainClass"], spec["arguments"]) == (
            "Java", "cluster", "org.apache.spark.examples.SparkPi", ["100"])
        assert spec["driver"]["memory"] == "1024m" and spec["executor"]["instances"] == 2
        assert spec["executor"]["cores"] == 2 and spec["deps"]["jars"] == ["https://repo/a.jar", "https://repo/b.jar"]
        assert spec["sparkConf"]["spark.x"] == "1" and {"name": "TZ", "value": "UTC"} in spec["driver"]["env"]
        # the operator's part, played by the test: states as it writes them, mapped to ours
        for state, ours in (("SUBMITTED", JobState.PENDING), ("RUNNING", JobState.RUNNING),
                            ("SUCCEEDING", JobState.RUNNING), ("COMPLETED", JobState.SUCCEEDED)):
            _write_status(custom, k8s_namespace, {"applicationState": {"state": state},
                                                  "sparkApplicationId": "spark-123"})
            status = executor.job_status("pi", k8s_namespace)
            assert status.state is ours and "spark-123" in status.message, (state, status)
        _write_status(custom, k8s_namespace, {"applicationState": {"state": "FAILED", "errorMessage": "driver OOM"}})
        status = executor.job_status("pi", k8s_namespace)
        assert status.state is JobState.FAILED and "driver OOM" in status.message and status.exit_code == 1
        executor.cancel_job("pi", k8s_namespace)  # deleting it: the operator kills driver and executors
        wait_for(lambda: executor.job_status("pi", k8s_namespace).state is JobState.MISSING, 30, "deleted")
    finally:
        _remove_crd(k8s_cluster)


def _created(executor, job):
    try:
        return executor.run_job(job)
    except ExecutorUnavailable:  # the CRD is not served yet
        return None


def _write_status(custom, namespace: str, status: dict) -> None:
    obj = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "pi")
    obj["status"] = {"driverInfo": {}, **status}  # the operator always writes driverInfo (the CRD requires it)
    custom.replace_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, "pi", obj)


def _crd_of(plural: str) -> dict:
    path = SHARED_CRDS / "spark-operator" / f"sparkoperator.k8s.io_{plural}.yaml"
    if not path.is_file():
        pytest.skip(f"{path} is not here")
    return next(d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "CustomResourceDefinition")


SPARK_JOBS = """
version: "2.0"
jobs:
  load:
    engine: spark
    image: apache/spark:4.0.1
    resource: local:///opt/app/etl.py
    args: ["1000"]
    sparkConf:
      driverResource: {cpu: 1, memory: 1024}
      executorResource: {cpu: 2, memory: 512, replica: 2}
  nightly:
    engine: spark
    resource: local:///opt/app/etl.py
    schedule: "0 2 * * *"
"""


def _objects(k8s: K8sCluster, namespace: str, plural: str) -> dict[str, dict]:
    try:
        found = k8s.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)["items"]
    except ApiException as exc:
        if exc.status == 404:
            return {}
        raise
    return {o["metadata"]["name"]: o for o in found}


def test_deployed_spark_jobs_become_spark_applications(k8s_cluster, executor):
    """A runtime's `engine: spark` jobs on a Kubernetes cluster with the operator (no Spark data
    cluster bound): a SparkApplication run once per change, a ScheduledSparkApplication for a
    schedule, the cluster's CPU overcommit as coreRequest; a job gone from the spec is pruned;
    without the scheduled kind's CRD the group is refused naming the job."""
    from diceyml import parse_dice_yml
    from scheduler.base import ExecutorError, Overcommit, RuntimeRef, ServiceGroup
    from scheduler.spark.operator import SCHEDULED_CRD

    _remove_crd(k8s_cluster)
    scheduled = _crd_of("scheduledsparkapplications")
    for crd in (_crd_of("sparkapplications"), scheduled):
        with contextlib.suppress(ApiException):
            k8s_cluster.apiextensions.delete_custom_resource_definition(crd["metadata"]["name"])
        wait_for(lambda crd=crd: _create_crd(k8s_cluster, crd), 60, f"{crd['metadata']['name']} to be created")
    runtime = RuntimeRef("acme", "shop", "etl", "DEV", "main")
    doc = parse_dice_yml(SPARK_JOBS, workspace="DEV")
    group = ServiceGroup(runtime=runtime, spec=doc, release="v1", overcommit=Overcommit(cpu_ratio=2.0))
    try:
        wait_for(lambda: _applied(executor, group), 60, "the CRDs to be served")
        ns = runtime.namespace
        apps = _objects(k8s_cluster, ns, PLURAL)
        assert len(apps) == 1 and next(iter(apps)).startswith("load-"), list(apps)
        app = next(iter(apps.values()))
        spec = app["spec"]
        assert app["metadata"]["labels"]["dice.io/job"] == "load"
        assert (spec["type"], spec["mainApplicationFile"], spec["arguments"]) == ("Python", "local:///opt/app/etl.py",
                                                                                   ["1000"])
        assert spec["image"] == "apache/spark:4.0.1" and spec["executor"]["instances"] == 2
        # overcommit 2: cores / 2 requested, the cores asked as the limit; memory as asked
        assert (spec["driver"]["coreRequest"], spec["driver"]["coreLimit"]) == ("500m", "1000m")
        assert (spec["executor"]["coreRequest"], spec["executor"]["coreLimit"]) == ("1000m", "2000m")
        assert spec["driver"]["memory"] == "1024m"
        nightly = _objects(k8s_cluster, ns, "scheduledsparkapplications")
        assert list(nightly) == ["nightly"], list(nightly)
        assert nightly["nightly"]["spec"]["schedule"] == "0 2 * * *"
        assert nightly["nightly"]["spec"]["template"]["mainApplicationFile"] == "local:///opt/app/etl.py"
        # applying again changes nothing: the same application, not a second run
        executor.apply(group)
        assert list(_objects(k8s_cluster, ns, PLURAL)) == list(apps)
        # the schedule removed from the spec: its ScheduledSparkApplication is pruned
        executor.apply(ServiceGroup(runtime=runtime, spec=doc.model_copy(update={"jobs": {"load": doc.jobs["load"]}}),
                                    release="v2", overcommit=Overcommit(cpu_ratio=2.0)))
        wait_for(lambda: not _objects(k8s_cluster, ns, "scheduledsparkapplications"), 30, "the schedule pruned")
        # without the scheduled kind's CRD, a schedule is refused naming the job (nothing applied)
        k8s_cluster.apiextensions.delete_custom_resource_definition(SCHEDULED_CRD)
        wait_for(lambda: SCHEDULED_CRD not in executor.operators(), 60, "the CRD to be removed")
        with pytest.raises(ExecutorError, match="job 'nightly' has a schedule.*scheduledsparkapplications"):
            executor.apply(group)
    finally:
        with contextlib.suppress(ApiException):
            k8s_cluster.apiextensions.delete_custom_resource_definition(SCHEDULED_CRD)
        with contextlib.suppress(Exception):
            executor.destroy(runtime)
        _remove_crd(k8s_cluster)


def _create_crd(k8s: K8sCluster, crd: dict) -> bool:
    try:
        k8s.apiextensions.create_custom_resource_definition(crd)
    except ApiException as exc:
        if exc.status != 409:
            raise
        return False  # the old one is still being deleted
    return True


def _applied(executor, group) -> bool:
    try:
        executor.apply(group)
    except Exception:  # the CRDs are not served yet (discovery, or the refusal of a kind not yet seen)
        return False
    return True


ENV_JOBS = """
version: "2.0"
envs:
  FROM_FILE: file
  OVERRIDDEN: file
addons:
  db:
    plan: postgresql:basic
jobs:
  load:
    engine: spark
    image: apache/spark:4.0.1
    resource: local:///opt/app/etl.py
    args: ["{rows}"]
    envs:
      NOTE: "note is ((PG_NOTE))"
  nightly:
    engine: spark
    resource: local:///opt/app/etl.py
    schedule: "0 2 * * *"
"""


def _set_status(k8s: K8sCluster, namespace: str, name: str, state: str, error: str = "", **extra) -> None:
    """Write a SparkApplication's status as the operator does."""
    obj = k8s.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    obj["status"] = {"driverInfo": {}, "applicationState": {"state": state, **({"errorMessage": error} if error else {})},
                     **extra}
    k8s.custom.replace_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name, obj)


def test_spark_applications_status_and_environment_in_the_runtime(k8s_cluster, executor, monkeypatch):
    """The runtime's status (watch-fed and listed) has each `engine: spark` job's latest
    SparkApplication with the operator's state and error: a run-once job keeps the runtime
    progressing until COMPLETED and degrades it on FAILED/SUBMISSION_FAILED; a scheduled run
    the operator made is shown and leaves the runtime healthy. The driver and executors get the
    variables every workload of the runtime gets: the file's envs (a `((KEY))` through the config
    Secret), the addon's variables (its password by reference to its Secret), the console's
    variables through envFrom (secret ones from a Secret): no secret value inline in the CR."""
    from types import SimpleNamespace

    from apps.deploy.live import status_dict
    from diceyml import parse_dice_yml
    from scheduler.base import Health, RuntimeRef, ServiceGroup

    _remove_crd(k8s_cluster)
    for crd in (_crd_of("sparkapplications"), _crd_of("scheduledsparkapplications")):
        with contextlib.suppress(ApiException):
            k8s_cluster.apiextensions.delete_custom_resource_definition(crd["metadata"]["name"])
        wait_for(lambda crd=crd: _create_crd(k8s_cluster, crd), 60, f"{crd['metadata']['name']} to be created")
    runtime = RuntimeRef("acme", "shop", "etl", "DEV", "jobs")
    ns = runtime.namespace

    def group(rows: int, addon: bool = False) -> ServiceGroup:
        text = ENV_JOBS.format(rows=rows)
        if not addon:  # on kwok a database's claim is never bound: the addon would degrade the runtime
            text = text.replace("addons:\n  db:\n    plan: postgresql:basic\n", "")
        return ServiceGroup(runtime=runtime, spec=parse_dice_yml(text, workspace="DEV"),
                            release=f"v{rows}", secret_configs={"PG_NOTE": "n0te-value"},
                            addon_secrets={"db": {"password": "db-pa55word"}},
                            variables={"OVERRIDDEN": "console"}, secret_variables={"TOKEN": "t0ken-value"})

    def status_where(predicate, what: str):
        """executor.status() (the watch-fed cache) until predicate holds; the listed snapshot agrees."""
        try:
            found = wait_for(lambda: (lambda st: st if predicate(st) else None)(executor.status(runtime)), 60, what)
        except TimeoutError:
            raise AssertionError((what, executor.status(runtime))) from None
        assert predicate(executor._snapshot(runtime)), (what, executor._snapshot(runtime))
        return found

    try:
        wait_for(lambda: _applied(executor, group(1000, addon=True)), 60, "the CRDs to be served")
        apps = _objects(k8s_cluster, ns, PLURAL)
        assert len(apps) == 1, list(apps)
        spec = next(iter(apps.values()))["spec"]
        for part in ("driver", "executor"):
            env = {e["name"]: e for e in spec[part]["env"]}
            assert env["FROM_FILE"] == {"name": "FROM_FILE", "value": "file"}
            assert env["NOTE"]["valueFrom"]["secretKeyRef"]["name"] == "dice-configs"
            assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"]
            assert "OVERRIDDEN" not in env and "TOKEN" not in env  # the console's: envFrom, so they win
            assert env["DICE_APPLICATION_NAME"]["value"] == "etl"
            sources = spec[part]["envFrom"]
            assert {"configMapRef": {"name": "dice-env"}} in sources  # POSTGRES_HOST/PORT/... (shared)
            assert sources[-2:] == [{"configMapRef": {"name": "dice-vars"}}, {"secretRef": {"name": "dice-secret-vars"}}]
        text = json.dumps(apps)
        for secret in ("n0te-value", "db-pa55word", "t0ken-value"):
            assert secret not in text
        shared = k8s_cluster.core.read_namespaced_config_map("dice-env", ns).data
        assert shared["POSTGRES_HOST"].startswith("db.") and shared["POSTGRES_USER"]

        # the status, without the addon: before the operator reports, the run-once job keeps the
        # runtime progressing; the schedule has no run yet
        # straight after the apply, the watch-fed status has the application this process wrote
        # (the cache awaits its own writes of every kind it follows, not only workloads), even
        # when the watch of SparkApplications lags (as on a loaded machine: injected here)
        from scheduler.kubernetes.informer import SPARK_KEY, NamespaceCache
        lagging, put = threading.Event(), NamespaceCache._put

        def lagging_put(cache, reflector, obj):
            if reflector.key == SPARK_KEY and lagging.is_set():
                time.sleep(1.5)
            put(cache, reflector, obj)

        monkeypatch.setattr(NamespaceCache, "_put", lagging_put)
        lagging.set()
        executor.apply(group(1000))
        first = executor.status(runtime)
        lagging.clear()
        wait_for(lambda: len(_objects(k8s_cluster, ns, PLURAL)) == 1, 30, "the first application pruned")
        load = next(iter(_objects(k8s_cluster, ns, PLURAL)))
        assert first.jobs["load"].name == load, first.jobs
        st = status_where(lambda s: set(s.jobs) == {"load", "nightly"} and s.health is Health.PROGRESSING
                          and s.jobs["load"].name == load, "both jobs in the status")
        assert st.jobs["load"].state is JobState.PENDING
        assert st.jobs["nightly"].state is JobState.PENDING and "no run yet" in st.jobs["nightly"].message
        _set_status(k8s_cluster, ns, load, "RUNNING", sparkApplicationId="spark-1", submissionTime="2026-12-07T02:00:00Z")
        st = status_where(lambda s: s.jobs["load"].state is JobState.RUNNING, "the job running")
        assert st.health is Health.PROGRESSING and "SparkApplication RUNNING" in st.jobs["load"].message
        assert st.jobs["load"].started is not None
        _set_status(k8s_cluster, ns, load, "COMPLETED", terminationTime="2026-12-07T02:03:00Z")
        st = status_where(lambda s: s.jobs["load"].state is JobState.SUCCEEDED, "the job completed")
        assert st.health is Health.HEALTHY and st.jobs["load"].exit_code == 0 and st.jobs["load"].finished

        # a run the ScheduledSparkApplication made (the operator copies its labels): shown, and its
        # failure does not make the runtime unhealthy
        nightly = _objects(k8s_cluster, ns, "scheduledsparkapplications")["nightly"]
        run = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SparkApplication",
               "metadata": {"name": "nightly-1765072800", "namespace": ns, "labels": nightly["metadata"]["labels"]},
               "spec": nightly["spec"]["template"]}
        k8s_cluster.custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, run)
        _set_status(k8s_cluster, ns, "nightly-1765072800", "FAILED", "driver pod OOMKilled")
        st = status_where(lambda s: s.jobs["nightly"].state is JobState.FAILED, "the scheduled run failed")
        assert st.jobs["nightly"].name == "nightly-1765072800" and "driver pod OOMKilled" in st.jobs["nightly"].message
        assert st.health is Health.HEALTHY

        # a new release: a new application; the operator refusing it degrades the runtime, naming
        # the job, the run and the operator's error, everywhere the status is shown
        executor.apply(group(2000))
        second = next(n for n in _objects(k8s_cluster, ns, PLURAL) if n.startswith("load-") and n != load)
        _set_status(k8s_cluster, ns, second, "SUBMISSION_FAILED", "image pull failed")
        st = status_where(lambda s: s.jobs["load"].name == second and s.jobs["load"].state is JobState.FAILED,
                          "the new run failed")
        assert st.health is Health.DEGRADED
        assert st.reason.startswith(f"job load: run {second} failed") and "SUBMISSION_FAILED" in st.reason
        assert "image pull failed" in st.reason
        shown = status_dict(SimpleNamespace(release=None), st)
        row = next(j for j in shown["jobs"] if j["name"] == "load")
        assert (row["run"], row["state"], row["exit_code"]) == (second, "failed", 1)
        assert "image pull failed" in row["message"]
    finally:
        with contextlib.suppress(Exception):
            executor.destroy(runtime)
        for crd in ("scheduledsparkapplications.sparkoperator.k8s.io",):
            with contextlib.suppress(ApiException):
                k8s_cluster.apiextensions.delete_custom_resource_definition(crd)
        _remove_crd(k8s_cluster)
