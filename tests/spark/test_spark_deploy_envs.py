"""A dice.yml Spark job sees what every service and job of its application sees, on its driver and
on its executors: the application's addon variables (POSTGRES_* of its PostgreSQL addon), the
file's envs with `((KEY))` filled from the project's configs, and the console's variables of the
application in the workspace (plain and secret), with the same precedence (console > dice.yml >
addons > discovery). The proof is the ETL shape: the job reads POSTGRES_* and writes rows into the
application's database, which the test then reads. Secret values never appear in the driver's
command line (kept in its job record, shown by `ps`) nor in the record of the runtime's jobs
outside its 0600 file."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest

from apps.deploy.models import Deployment
from tests.test_deployments_support import bind_to

from .test_spark_deploy import _bind, _deploy, _log, rollouts, spark_row  # noqa: F401

pytestmark = [pytest.mark.spark, pytest.mark.django_db(transaction=True),
              pytest.mark.needs_binary("postgres", "postgresql")]

NAMES = ["POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DATABASE",
         "FROM_FILE", "OVERRIDDEN", "NOTE", "TOKEN", "DICE_APPLICATION_NAME"]

JOB = """
import os, subprocess, sys
from pyspark.sql import SparkSession
names = sys.argv[1].split(",")
spark = SparkSession.builder.getOrCreate()
seen = spark.sparkContext.parallelize([0], 1).map(lambda _: {n: os.environ.get(n) for n in names}).collect()[0]
spark.stop()
rows = [("driver", n, os.environ.get(n)) for n in names] + [("executor", n, v) for n, v in seen.items()]
values = ",".join("('%s', '%s', %s)" % (side, n, "NULL" if v is None else "$v$" + v + "$v$") for side, n, v in rows)
env = dict(os.environ, PGHOST=os.environ["POSTGRES_HOST"], PGPORT=os.environ["POSTGRES_PORT"],
           PGUSER=os.environ["POSTGRES_USER"], PGPASSWORD=os.environ["POSTGRES_PASSWORD"],
           PGDATABASE=os.environ["POSTGRES_DATABASE"])
subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-c",
                "CREATE TABLE seen (side text, name text, value text); INSERT INTO seen VALUES " + values],
               env=env, check=True)
print("LOADED", len(rows), flush=True)
"""

SPEC = """
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
    resource: etl/job.py
    args: ["{names}"]
    envs:
      NOTE: "note is ((PG_NOTE))"
    sparkConf:
      driverResource: {{cpu: 1, memory: 512}}
      executorResource: {{cpu: 1, memory: 512, replica: 1}}
"""


def test_a_spark_job_gets_the_applications_addon_config_and_console_variables(
        rollouts, tenant_a, spark_row, monkeypatch):  # noqa: F811
    from apps.clusters.models import Cluster
    from apps.deploy import variables
    from apps.deploy.addons import credentials
    from apps.deploy.engines import runtime_executor
    from apps.deploy.models import AddonInstance
    from apps.deploy.refs import runtime_ref
    from apps.pipelines import services as pipeline_services
    from scheduler.local.state import read_json
    from tests.spark import test_spark_deploy

    monkeypatch.setattr(test_spark_deploy, "ETL", JOB)
    bind_to(tenant_a, Cluster.objects.get(name="local"))
    type(tenant_a.app).objects.filter(pk=tenant_a.app.pk).update(repo_url="")
    _bind(tenant_a, "spark-test")
    pipeline_services.set_config(tenant_a.owner, tenant_a.project, key="PG_NOTE", value="n0te-value", secret=True)
    variables.set_variable(tenant_a.owner, tenant_a.app, "DEV", name="OVERRIDDEN", value="console")
    variables.set_variable(tenant_a.owner, tenant_a.app, "DEV", name="TOKEN", value="t0ken-value", secret=True)

    d = _deploy(tenant_a, SPEC.format(names=",".join(NAMES)))
    assert d.status == "healthy", (d.status, d.message, _log(d))
    d = Deployment.objects.select_related("runtime").get(pk=d.pk)
    ref = runtime_ref(d.runtime)
    executor = runtime_executor(d.runtime)
    host, port = executor.status(ref).addons["db"].url.split(":")
    creds = credentials(AddonInstance.objects.get(runtime=d.runtime, name="db"))
    psql = shutil.which("psql")
    out = subprocess.run([psql, "-tA", "-F", "|", "-c", "SELECT side, name, coalesce(value, '<unset>') FROM seen"],
                         check=True, capture_output=True, text=True,
                         env={"PGHOST": host, "PGPORT": port, "PGUSER": creds["username"],
                              "PGPASSWORD": creds["password"], "PGDATABASE": creds["database"],
                              "PATH": "/usr/bin:/bin"})
    seen: dict[str, dict[str, str]] = {}
    for line in out.stdout.strip().splitlines():
        side, name, value = line.split("|", 2)
        seen.setdefault(side, {})[name] = value
    expected = {"POSTGRES_HOST": host, "POSTGRES_PORT": port, "POSTGRES_USER": creds["username"],
                "POSTGRES_PASSWORD": creds["password"], "POSTGRES_DATABASE": creds["database"],
                "FROM_FILE": "file", "OVERRIDDEN": "console", "NOTE": "note is n0te-value", "TOKEN": "t0ken-value",
                "DICE_APPLICATION_NAME": tenant_a.app.name}
    assert seen == {"driver": expected, "executor": expected}

    # the job's run where the runtime's status shows: the API (what `dice runtime status` prints) and the page
    run = d.progress["jobs"]["load"]["run"]
    answer = tenant_a.api().get(f"/api/runtimes/{d.runtime.pk}/")
    assert answer.status_code == 200, answer.content
    shown = answer.json()["status"]["jobs"]
    assert [(j["name"], j["run"], j["state"], j["exit_code"]) for j in shown] == [("load", run, "succeeded", 0)]
    from dice_cli.deploy_commands import _runtime_rows

    assert {"service": "load (job)", "replicas": run, "health": "succeeded", "url": "",
            "reason": shown[0]["message"]} in _runtime_rows(answer.json())
    page = tenant_a.browser_client().get(d.runtime.get_absolute_url())
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="job-load"' in html and run in html and "status-succeeded" in html

    # no secret in what others may read: the driver's command line (its job record keeps it and
    # `ps` shows it), and the record of the runtime's Spark jobs is the console's alone (0600)
    spark = executor.engines["spark"]
    record = read_json(spark.drivers._job_dir(ref.namespace, run) / "job.json")
    command = " ".join(record["command"])
    assert "--properties-file" in command
    for secret in (creds["password"], "n0te-value", "t0ken-value"):
        assert secret not in command
    # the executors' environment is in a file placed for the driver (0600), where Spark redacts the
    # secret ones wherever it shows its properties (UI, event logs)
    placed = os.path.join(record["workdir"], ".dice", "executor-env.properties")
    assert stat.S_IMODE(os.stat(placed).st_mode) == 0o600
    with open(placed) as fh:
        text = fh.read()
    assert "spark.executorEnv.FROM_FILE=file\n" in text
    assert "(?:NOTE|POSTGRES_PASSWORD|TOKEN)$" in text, text
    path = spark.deployed._path(ref)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
