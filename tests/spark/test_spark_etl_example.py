"""examples/etl/ end to end as a pipeline, as a user of a fresh console runs it: the application is
deployed on `local` with a PostgreSQL addon (the real postgres binaries), the project's configs
PG_* are set to the addon's connection values, and examples/etl/pipeline.yml runs unchanged from a
git repository holding the example: extract (CSV), transform (PySpark, the `spark` action on the
workspace's Spark data cluster: the session's managed one), load (psql \\copy into the addon),
check (the loaded rows match). The steps clone from a local path, which the sandbox does not show
(`unsandboxed`, as the other git-checkout tests)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from apps.logs.services import read_task_lines
from tests.pipelines_helpers import engine, wait_until  # noqa: F401

from .test_spark_pipeline import _bind

pytestmark = [pytest.mark.spark, pytest.mark.django_db(transaction=True),
              pytest.mark.needs_binary("postgres", "postgresql")]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "etl"

APP = """
version: "2.0"
services:
  app:
    cmd: sleep 100000
addons:
  db:
    plan: postgresql:basic
"""


def _repo(tmp_path: Path) -> Path:
    work, bare = tmp_path / "src", tmp_path / "etl.git"
    env = {"GIT_AUTHOR_NAME": "Ann", "GIT_AUTHOR_EMAIL": "ann@example.org", "GIT_COMMITTER_NAME": "Ann",
           "GIT_COMMITTER_EMAIL": "ann@example.org", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True, env=env)
    shutil.copytree(EXAMPLE, work / "examples" / "etl")
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True, env=env)
    subprocess.run(["git", "add", "."], cwd=work, check=True, env=env)
    subprocess.run(["git", "commit", "-q", "-m", "etl example"], cwd=work, check=True, env=env)
    subprocess.run(["git", "push", "-q", str(bare), "main"], cwd=work, check=True, env=env)
    return bare


@pytest.fixture
def spark_row(spark_cluster):
    from apps.clusters.models import Cluster

    return Cluster.objects.create(name="spark-test", kind="spark", all_organizations=True,
                                  api_server=spark_cluster.master.endpoint)


def test_the_etl_example_runs_as_a_pipeline_into_the_applications_postgresql(
        unsandboxed, engine, tenant_a, spark_row, tmp_path, settings):  # noqa: F811
    from apps.clusters.models import Cluster
    from apps.deploy import deployments
    from apps.deploy.addons import credentials
    from apps.deploy.engines import runtime_executor
    from apps.deploy.models import AddonInstance, Deployment
    from apps.deploy.refs import runtime_ref
    from apps.deploy.services import create_release
    from apps.deploy.tasks import run_deployment
    from apps.pipelines import services as pipeline_services
    from tests.test_deployments_support import bind_to

    settings.DICE_DEPLOY_FILES = tmp_path / "deploy-files"
    settings.DICE_DEPLOY_TIMEOUT = 240
    bind_to(tenant_a, Cluster.objects.get(name="local"))
    type(tenant_a.app).objects.filter(pk=tenant_a.app.pk).update(repo_url="")  # the app runs its cmd, no files
    assert _bind(tenant_a, "spark-test").status_code == 200
    release = create_release(tenant_a.owner, tenant_a.app, spec_text=APP)
    d = deployments.deploy(tenant_a.owner, tenant_a.app, "DEV", release=release, runtime_name="main")
    run_deployment(d.pk)
    # the `engine` fixture's worker may have taken the rollout first (deploy enqueues it on commit):
    # then the direct call skips it ("no longer active") and that worker follows it to its end
    wait_until(lambda: Deployment.objects.get(pk=d.pk).status not in ("queued", "deploying"), 300,
               "the rollout to end")
    d = Deployment.objects.select_related("runtime").get(pk=d.pk)
    assert d.status == "healthy", (d.status, d.message)
    host, port = runtime_executor(d.runtime).status(runtime_ref(d.runtime)).addons["db"].url.split(":")
    creds = credentials(AddonInstance.objects.get(runtime=d.runtime, name="db"))
    for key, value, secret in (("PG_HOST", host, False), ("PG_PORT", port, False),
                               ("PG_USER", creds["username"], False), ("PG_PASSWORD", creds["password"], True),
                               ("PG_DATABASE", creds["database"], False)):
        pipeline_services.set_config(tenant_a.owner, tenant_a.project, key=key, value=value, secret=secret)

    bare = _repo(tmp_path)
    run = engine.run(tenant_a, (EXAMPLE / "pipeline.yml").read_text(), params={"repo": str(bare), "rows": "2000"})
    engine.wait(run, 400)
    tasks = engine.tasks(run)

    def log(alias: str) -> list[str]:
        return [line.text for line in read_task_lines(tasks[alias].pk)]

    assert run.status == "success", (run.reason, {a: (t.status, t.reason, [x for x in log(a) if "INFO" not in x and not x.startswith("\tat ")][-20:])
                                                  for a, t in tasks.items()})
    assert tasks["transform"].cluster == "spark-test" and tasks["transform"].outputs == {"rows": "28"}
    assert tasks["check"].outputs == {"loaded": "28"}
    # the rows are in the application's database, as its own service would read them
    psql = shutil.which("psql")
    out = subprocess.run([psql, "-tA", "-c", "SELECT count(*), sum(orders) FROM daily_totals"], check=True,
                         capture_output=True, text=True,
                         env={"PGHOST": host, "PGPORT": port, "PGUSER": creds["username"],
                              "PGPASSWORD": creds["password"], "PGDATABASE": creds["database"], "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "28|2000"
    # figures for the report (bench): the pipeline end to end, and the transform step's start until its
    # application is registered at the master (the driver running)
    from apps.pipelines import steps

    app = steps.engine_details(run, [tasks["transform"]])["transform"]
    assert app["state"] == "FINISHED" and app["application_id"].startswith("app-"), app
    print(f"\nETL figures: run {(run.finished - run.started).total_seconds():.1f} s, transform step "
          f"{tasks['transform'].duration:.1f} s, step start to driver registered "
          f"{app['started'] - tasks['transform'].started.timestamp():.1f} s")
