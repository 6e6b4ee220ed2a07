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


@pytest.mark.parametrize(("body", "message"), [
    ("engine: hadoop\nresource: x.jar", "jobs.nightly.engine: engine 'hadoop' is not supported"),
    ("engine: spark", "jobs.nightly: a job with engine: spark needs resource"),
    ("engine: spark\nresource: x.py\ncmd: python x.py", "runs its resource, not cmd"),
    ("cmd: x\nresource: x.py", "jobs.nightly: resource belong to a data engine's job"),
    ("engine: flink\nresource: a.jar\nsparkConf: {}", "sparkConf is for engine: spark"),
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
