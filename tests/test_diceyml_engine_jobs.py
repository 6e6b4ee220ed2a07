"""dice.yml jobs with `engine:` (spark, flink): the fields the `spark` action takes, errors that
name the job, and the workspace's own cluster leaving them alone."""

from __future__ import annotations

import pytest

from diceyml import parse_dice_yml
from scheduler.base import ClusterRef, RuntimeRef, ServiceGroup
from scheduler.kubernetes.render import render_group
from scheduler.spark.app import from_params
from speckit.errors import SpecInvalid

HEAD = 'version: "2.0"\nservices:\n  web: {cmd: "sleep 1", image: "nginx"}\njobs:\n  nightly:\n'


def _parse(body: str):
    return parse_dice_yml(HEAD + "".join(f"    {line}\n" for line in body.strip().splitlines()))


def test_spark_job_fields_are_the_spark_action_params():
    spec = _parse("""
engine: spark
schedule: "0 2 * * *"
resource: https://repo/etl.jar
class: io.x.Etl
args: "--day 'last day'"
envs: {TZ: UTC}
properties: {spark.sql.shuffle.partitions: 4}
sparkConf: {kind: cluster, driverResource: {cpu: 1, memory: 1g}, executorResource: {memory: 512, replica: 2}}
""")
    job = spec.jobs["nightly"]
    assert job.engine == "spark" and job.schedule == "0 2 * * *"
    app = from_params(job.engine_params(), "jobs.nightly")
    assert (app.main_class, app.args, app.driver_mem, app.executor_instances) == (
        "io.x.Etl", ("--day", "last day"), 1024, 2)
    assert app.conf == {"spark.sql.shuffle.partitions": "4"} and app.envs == {"TZ": "UTC"}


def test_flink_is_accepted_for_the_flink_runner():
    assert _parse("engine: flink\nresource: a.jar\nclass: A").jobs["nightly"].engine == "flink"


def test_flink_job_fields_are_the_flink_action_params_and_make_its_command():
    from scheduler.flink.deployed import job_command

    job = _parse("""
engine: flink
resource: jobs/count.jar
class: Count
args: "batch 'a tag'"
properties: {restart-strategy.type: none}
flinkConf: {parallelism: 3, kind: FlinkJob, taskManagerResource: {cpu: 1, memory: 2048}}
""").jobs["nightly"]
    params = job.engine_params()
    assert params["flinkConf"]["parallelism"] == 3
    assert job_command(params, "/r/jobs/count.jar", "jobs.nightly") == [
        "flink", "run", "-p", "3", "-Drestart-strategy.type=none", "-c", "Count", "/r/jobs/count.jar", "batch", "a tag"]
    python = _parse("engine: flink\nresource: jobs/wc.py\nargs: [--n, 5]").jobs["nightly"]
    assert job_command(python.engine_params(), "/r/jobs/wc.py", "jobs.nightly") == [
        "flink", "run", "-py", "/r/jobs/wc.py", "--n", "5"]


@pytest.mark.parametrize(("params", "message"), [
    ({"resource": "x.txt"}, "neither a .jar nor a .py"),
    ({"resource": "x.py", "class": "A"}, "a Python program has none"),
    ({"resource": "x.jar", "flinkConf": {"parallelism": 0}}, "flinkConf.parallelism must be a whole number"),
    ({"resource": "x.jar", "properties": {"$internal.pipeline.job-id": "x"}}, "not a Flink configuration key"),
])
def test_bad_flink_job_params_name_the_job(params, message):
    from scheduler.base import ExecutorError
    from scheduler.flink.deployed import job_command

    with pytest.raises(ExecutorError, match="jobs.nightly") as err:
        job_command(params, "/r/x", "jobs.nightly")
    assert message in str(err.value)


@pytest.mark.parametrize("resource", ["https://repo/x.jar", "/etc/x.jar", "../x.jar", "a/../../x.jar"])
def test_a_flink_jobs_resource_on_a_session_cluster_is_a_file_of_the_release(resource):
    from scheduler.base import ExecutorError
    from scheduler.flink.deployed import release_file

    with pytest.raises(ExecutorError, match="jobs.nightly.resource"):
        release_file(resource, "/r", "jobs.nightly")
    assert release_file("jobs/x.jar", "/r", "jobs.nightly") == "/r/jobs/x.jar"


@pytest.mark.parametrize(("body", "message"), [
    ("engine: hadoop\nresource: x.jar", "jobs.nightly.engine: engine 'hadoop' is not supported"),
    ("engine: spark", "jobs.nightly: a job with engine: spark needs resource"),
    ("engine: spark\nresource: x.py\ncmd: python x.py", "runs its resource, not cmd"),
    ("cmd: x\nresource: x.py", "jobs.nightly: resource belong to a data engine's job"),
    ("engine: flink\nresource: a.jar\nsparkConf: {}", "sparkConf is for engine: spark"),
    ("engine: spark\nresource: a.jar\nflinkConf: {}", "flinkConf is for engine: flink"),
    ("cmd: x\nflinkConf: {parallelism: 2}", "flinkConf belong to a data engine's job"),
])
def test_bad_engine_jobs_name_the_job(body, message):
    with pytest.raises(SpecInvalid) as err:
        _parse(body)
    assert message in str(err.value), str(err.value)


def test_kubernetes_renderer_leaves_engine_jobs_to_the_data_cluster():
    spec = _parse("engine: spark\nresource: x.py")
    group = ServiceGroup(RuntimeRef("o", "p", "a", "DEV", "main"), spec, images={"web": "nginx"})
    kinds = [(m["kind"], m["metadata"]["name"]) for m in render_group(group, ClusterRef(name="k", kind="kubernetes"))]
    assert not any(name == "nightly" for _, name in kinds), kinds
