# ruff: noqa: F811
"""The `flink` action's job sees what a custom-script step sees, as the `spark` action's does: its
main(), which the Flink CLI runs in the step's sandbox, has the pipeline's `envs` (a
`${{ configs.* }}` secret filled in), PIPELINE_ID, PIPELINE_TASK_ALIAS and DICE_WORKSPACE; none of
their values is on the client's command line. The counting job's `env` mode tags what it prints
(on the TaskManager) with the values its main() was given."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from apps.logs.services import read_task_lines
from tests.flink.conftest import taskmanager_counts, wait_for
from tests.flink.test_flink_action import data_cluster  # noqa: F401
from tests.pipelines_helpers import engine  # noqa: F401

pytestmark = [pytest.mark.flink, pytest.mark.django_db(transaction=True)]

SECRET = "s3cret-config-value"
NAMES = "FROM_PIPELINE,PIPELINE_ID,PIPELINE_TASK_ALIAS,DICE_WORKSPACE,DB_PASSWORD"


def _pipeline(jar: Path) -> str:
    code = base64.b64encode(jar.read_bytes()).decode()
    return f"""
version: "1.1"
envs:
  FROM_PIPELINE: pipeline
  DB_PASSWORD: "${{{{ configs.db_password }}}}"
stages:
  - stage:
      - custom-script:
          alias: build
          commands: ["echo {code} | base64 -d > count.jar"]
  - stage:
      - flink:
          alias: count
          params:
            resource: ${{{{ dirs.build }}}}/count.jar
            class: Count
            args: [env, "{NAMES}"]
            flinkConf: {{parallelism: 1}}
"""


def test_a_flink_steps_job_sees_what_a_script_step_sees(engine, tenant_a, data_cluster, flink, count_jar: Path):
    from apps.pipelines import paths
    from apps.pipelines import services as pipeline_services

    pipeline_services.set_config(tenant_a.owner, tenant_a.project, key="db_password", value=SECRET, secret=True)
    run = engine.wait(engine.run(tenant_a, _pipeline(count_jar)), timeout=180)
    task = engine.tasks(run)["count"]
    log = "\n".join(line.text for line in read_task_lines(task.pk))
    assert run.status == "success", (run.reason, log[-3000:])
    tag = f"pipeline_{run.pk}_count_DEV_{SECRET}"
    assert wait_for(lambda: taskmanager_counts(flink, tag), 30, "the job's counts tagged with its environment")
    with open(os.path.join(paths.step_folder(task), "flink-step.json")) as fh:
        argv = json.load(fh)["argv"]
    assert SECRET not in " ".join(argv)
