"""The spark action's params (Erda's shape and its bigDataConf string) and spark-submit lines as a
SparkApp: what runs, with which resources, and a clear error naming the param for bad input."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from scheduler.base import ExecutorError
from scheduler.spark.app import DEFAULT_REDACTION, from_command, from_params, job_command, memory_mib

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


def test_what_must_not_be_on_a_command_line_goes_to_the_properties_file():

    app = from_params({"resource": "x.py", "envs": {"TOKEN": "t0ken", "PLAIN": "p"},
                       "properties": {"spark.hadoop.store.credential": "k3y-value", "spark.sql.x": "1",
                                      "spark.redaction.regex": "(?i)mine"}})
    app = dataclasses.replace(app, secret_envs=("TOKEN",))
    kept, placed = app.placed_properties(("k3y-value", "t0ken"))
    line = " ".join(kept.submit_args("spark://h:7077", "client")) + " ".join(job_command(kept))
    for hidden in ("k3y-value", "t0ken", "spark.redaction.regex", "executorEnv"):
        assert hidden not in line
    assert "spark.sql.x=1" in line
    assert placed["spark.executorEnv.TOKEN"] == "t0ken" and placed["spark.hadoop.store.credential"] == "k3y-value"
    # the operator's regex kept, the secret variable and property named: Spark redacts both
    regex = re.compile(placed["spark.redaction.regex"])
    assert placed["spark.redaction.regex"].startswith("(?i)mine|")
    assert regex.search("spark.executorEnv.TOKEN") and regex.search("spark.hadoop.store.credential")
    assert not regex.search("spark.executorEnv.PLAIN") and not regex.search("spark.sql.x")
    # nothing secret: only the executors' environment, the default regex untouched
    kept, placed = dataclasses.replace(app, secret_envs=()).placed_properties(())
    assert "spark.redaction.regex" not in placed and kept.conf["spark.hadoop.store.credential"] == "k3y-value"


def test_a_spark_steps_environment_is_a_script_steps_with_the_params_envs():
    from scheduler.spark.executor import step_app_env

    spec = {"alias": "etl", "task_run": 42, "metafile": "/x/metafile", "workdir": "/x",
            "envs": {"FROM_PIPELINE": "p", "OVERRIDDEN": "pipeline", "PIPELINE_ID": "7", "DICE_WORKSPACE": "DEV",
                     "METAFILE": "/x/metafile", "WORKDIR": "/x"}}
    assert step_app_env(spec, {"OVERRIDDEN": "params", "PIPELINE_ID": "mine", "EXTRA": "e"}) == {
        "FROM_PIPELINE": "p", "OVERRIDDEN": "params", "EXTRA": "e", "PIPELINE_ID": "7", "DICE_WORKSPACE": "DEV",
        "PIPELINE_TASK_ALIAS": "etl", "PIPELINE_TASK_RUN_ID": "42"}


def test_without_the_operators_regex_spark_s_default_is_kept_and_extended():
    app = from_params({"resource": "x.py", "envs": {"TOKEN": "t"}})
    _, placed = dataclasses.replace(app, secret_envs=("TOKEN",)).placed_properties()
    assert placed["spark.redaction.regex"].startswith(DEFAULT_REDACTION + "|")
