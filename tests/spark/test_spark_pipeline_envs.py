"""A `spark` step's application sees what a custom-script step sees, on its driver and on its
executors: the pipeline's `envs` (a `${{ configs.* }}` secret filled in), PIPELINE_ID,
PIPELINE_TASK_ALIAS, PIPELINE_TASK_RUN_ID, DICE_WORKSPACE..., with the params' `envs` over the
pipeline's. A secret (a secret config in a variable or in a Spark property) is on no command line
(the step's script, which `ps` shows when it runs), and Spark redacts it where it shows its
properties: the application's event log (what the Spark UI's Environment page is read from) has
neither the secret's value nor its clear property."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat

import pytest

from apps.logs.services import read_task_lines
from tests.pipelines_helpers import engine  # noqa: F401

from .test_spark_pipeline import _bind, spark_row  # noqa: F401

pytestmark = [pytest.mark.spark, pytest.mark.django_db(transaction=True)]

NAMES = ["FROM_PIPELINE", "OVERRIDDEN", "FROM_PARAMS", "DB_PASSWORD", "PIPELINE_ID", "PIPELINE_TASK_ALIAS",
         "PIPELINE_TASK_RUN_ID", "DICE_WORKSPACE", "DICE_PROJECT_NAME", "METAFILE"]
SECRET = "s3cret-config-value"
KEY_SECRET = "pr0perty-secret-value"

PROGRAM = """
import hashlib, json, os, sys
from pyspark.sql import SparkSession
names = sys.argv[1].split(",")
os.makedirs("events", exist_ok=True)
spark = SparkSession.builder.getOrCreate()
def seen(_):
    return {n: (None if os.environ.get(n) is None else hashlib.sha256(os.environ[n].encode()).hexdigest())
            for n in names}
executor = spark.sparkContext.parallelize([0], 1).map(seen).collect()[0]
driver = seen(0)
print("SEEN " + json.dumps({"driver": driver, "executor": executor}), flush=True)
spark.stop()
"""


def _pipeline() -> str:
    code = base64.b64encode(PROGRAM.encode()).decode()
    return f"""
version: "1.1"
envs:
  FROM_PIPELINE: pipeline
  OVERRIDDEN: pipeline
  DB_PASSWORD: "${{{{ configs.db_password }}}}"
stages:
  - stage:
      - custom-script:
          alias: code
          commands: ["echo {code} | base64 -d > app.py"]
  - stage:
      - spark:
          alias: etl
          params:
            resource: ${{{{ dirs.code }}}}/app.py
            args: ["{",".join(NAMES)}"]
            envs:
              FROM_PARAMS: params
              OVERRIDDEN: params
              PIPELINE_ID: "not the params' to change"
            properties:
              spark.eventLog.enabled: "true"
              spark.eventLog.dir: events
              spark.eventLog.rolling.enabled: "false"
              spark.eventLog.compress: "false"
              spark.hadoop.dice.example.credential: "${{{{ configs.key_secret }}}}"
            sparkConf:
              driverResource: {{cpu: 1, memory: 512}}
              executorResource: {{cpu: 1, memory: 512, replica: 1}}
"""


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def test_a_spark_steps_driver_and_executors_see_what_a_script_step_sees(engine, tenant_a, spark_row):  # noqa: F811
    from apps.pipelines import paths
    from apps.pipelines import services as pipeline_services

    assert _bind(tenant_a, "spark-test").status_code == 200
    pipeline_services.set_config(tenant_a.owner, tenant_a.project, key="db_password", value=SECRET, secret=True)
    pipeline_services.set_config(tenant_a.owner, tenant_a.project, key="key_secret", value=KEY_SECRET, secret=True)
    run = engine.run(tenant_a, _pipeline())
    engine.wait(run, 180)
    tasks = engine.tasks(run)
    task = tasks["etl"]
    lines = [line.text for line in read_task_lines(task.pk)]
    assert run.status == "success", (run.reason, lines[-40:])
    seen = json.loads(next(t for t in lines if t.startswith("SEEN "))[5:])
    expected = {"FROM_PIPELINE": "pipeline", "OVERRIDDEN": "params", "FROM_PARAMS": "params", "DB_PASSWORD": SECRET,
                "PIPELINE_ID": str(run.pk), "PIPELINE_TASK_ALIAS": "etl", "PIPELINE_TASK_RUN_ID": str(task.pk),
                "DICE_WORKSPACE": "DEV", "DICE_PROJECT_NAME": tenant_a.project.slug}
    hashed = {name: _hash(value) for name, value in expected.items()}
    # the step's own metafile is the driver's (the agent reads it there), not the executors'
    assert seen["executor"] == {**hashed, "METAFILE": None}
    assert {k: v for k, v in seen["driver"].items() if k != "METAFILE"} == hashed and seen["driver"]["METAFILE"]

    # no secret on a command line: the step's spark-submit line (its script, and the process `ps` shows)
    folder = paths.step_folder(task)
    with open(os.path.join(folder, "spec.json")) as fh:
        command = " ".join(json.load(fh)["commands"])
    assert "--properties-file" in command and "spark.hadoop.dice.example.credential" not in command
    for secret in (SECRET, KEY_SECRET):
        assert secret not in command
    placed = os.path.join(folder, "spark-properties")
    assert stat.S_IMODE(os.stat(placed).st_mode) == 0o600
    with open(placed) as fh:
        text = fh.read()
    assert "spark.executorEnv.FROM_PIPELINE=pipeline\n" in text and "spark.hadoop.dice.example.credential=" in text

    # Spark redacts them where it shows its properties: the event log holds neither secret
    events = os.path.join(paths.dirs_root(run.pk), "etl", "events")
    logs = [os.path.join(top, name) for top, _, names in os.walk(events) for name in names]
    assert len(logs) == 1, logs
    with open(logs[0]) as fh:
        log = fh.read()
    assert SECRET not in log and KEY_SECRET not in log
    environment = next(json.loads(line) for line in log.splitlines()
                       if json.loads(line).get("Event") == "SparkListenerEnvironmentUpdate")
    props = dict(environment["Spark Properties"])
    assert props["spark.executorEnv.FROM_PIPELINE"] == "pipeline"
    assert props["spark.executorEnv.DB_PASSWORD"] == props["spark.hadoop.dice.example.credential"] \
        == "*********(redacted)", props
