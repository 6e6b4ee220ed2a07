"""The spark action's params (Erda's shape and its bigDataConf string) and spark-submit lines as a
SparkApp: what runs, with which resources, and a clear error naming the param for bad input."""

from __future__ import annotations

import json

import pytest

from scheduler.base import ExecutorError
from scheduler.spark.app import from_command, from_params, job_command, memory_mib

ERDA = {
    "resource": "/work/dirs/repo/etl/job.jar", "class": "io.terminus.Etl", "args": ["2026-01-01", "full"],
    "envs": {"TZ": "UTC"}, "properties": {"spark.sql.shuffle.partitions": 4},
    "sparkConf": {"type": "Java", "kind": "cluster", "driverResource": {"cpu": 1, "memory": 1024},
                  "executorResource": {"cpu": 2, "memory": "2g", "replica": 3}},
}


def test_erda_params():
    app = from_params(ERDA)
    assert (app.resource, app.main_class, app.args, app.type, app.kind) == (
        "/work/dirs/repo/etl/job.jar", "io.terminus.Etl", ("2026-01-01", "full"), "Java", "cluster")
    props = app.properties()
    assert props["spark.driver.memory"] == "1024m" and props["spark.executor.memory"] == "2048m"
    assert props["spark.executor.instances"] == "3" and props["spark.cores.max"] == "6"
    assert props["spark.sql.shuffle.partitions"] == "4" and app.envs == {"TZ": "UTC"}


def test_bigdataconf_json_string_is_the_same_app():
    conf = json.dumps({"name": "nightly", "spec": ERDA})
    app = from_params({"bigDataConf": conf})
    assert app == from_params({**ERDA, "name": "nightly"})
    assert app.name == "nightly"


def test_python_is_found_from_the_resource_and_needs_no_class():
    app = from_params({"resource": "${{ dirs.repo }}/etl.py", "args": "a 'b c'"})
    assert app.python and app.args == ("a", "b c") and app.main_class == ""


@pytest.mark.parametrize(("params", "where"), [
    ({}, "spark.resource"),
    ({"resource": "x.jar"}, "spark.class"),
    ({"resource": "x.py", "sparkConf": {"type": "R"}}, "spark.sparkConf.type"),
    ({"resource": "x.py", "sparkConf": {"kind": "yarn"}}, "spark.sparkConf.kind"),
    ({"resource": "x.py", "sparkConf": {"driverResource": {"memory": "lots"}}}, "spark.sparkConf.driverResource.memory"),
    ({"resource": "x.py", "sparkConf": {"executorResource": {"replica": 0}}}, "spark.sparkConf.executorResource.replica"),
    ({"resource": "x.py", "envs": {"1BAD": "x"}}, "spark.envs"),
    ({"resource": "x.py", "properties": {"a b": "x"}}, "spark.properties"),
    ({"resource": "x.py", "args": {"a": 1}}, "spark.args"),
    ({"bigDataConf": "{not json"}, "spark.bigDataConf"),
])
def test_bad_params_name_the_param(params, where):
    with pytest.raises(ExecutorError) as err:
        from_params(params)
    assert str(err.value).startswith(where), str(err.value)


def test_job_command_round_trips():
    app = from_params(ERDA)
    assert from_command(job_command(app), app.envs) == app


def test_hand_written_spark_submit_line():
    app = from_command(["spark-submit", "--class", "A", "--driver-memory", "1g", "--conf", "spark.x=1",
                        "https://repo/a.jar", "arg"])
    assert (app.main_class, app.driver_mem, app.conf, app.args, app.kind) == ("A", 1024, {"spark.x": "1"},
                                                                              ("arg",), "cluster")
    with pytest.raises(ExecutorError, match="--jars is not supported"):
        from_command(["spark-submit", "--jars", "x.jar", "a.jar"])
    with pytest.raises(ExecutorError, match="not .'python'"):
        from_command(["python", "a.py"], name="j")


@pytest.mark.parametrize(("value", "mib"), [(512, 512), ("512", 512), ("1g", 1024), ("1.5GiB", 1536), ("256m", 256)])
def test_memory_sizes(value, mib):
    assert memory_mib(value, "x") == mib


def test_memory_below_what_spark_accepts_is_refused_up_front():
    with pytest.raises(ExecutorError, match="driverResource.memory: 256 MiB is less than Spark accepts"):
        from_params({"resource": "x.py", "sparkConf": {"driverResource": {"memory": 256}}})
