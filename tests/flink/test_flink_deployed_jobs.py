"""dice.yml jobs with `engine: flink` end to end through apps/deploy, on the local cluster with the
console's managed flink-local as the workspace's Flink data cluster: the job runs once per release
as a bounded job followed to its end (the deployment waits for it), with the environment every job
of the runtime gets (an addon's variables, a `((KEY))` project config, a console variable, the
file's envs); its run, state and log show in the runtime's API and page; a failing job fails the
deployment naming it; a running job is cancelled through the API; a scheduled job runs on the
beat's firing, once per minute. Rollouts run eagerly."""

from __future__ import annotations

import base64
import json
import shutil
import time
from pathlib import Path

import pytest
from django.test import Client

from apps.deploy.bundles import make_archive
from scheduler.base import JobState
from scheduler.flink import FlinkExecutor
from tests.conftest import make_org
from tests.flink.conftest import taskmanager_counts, wait_for

pytestmark = [pytest.mark.flink, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def console(settings, tmp_path, flink: FlinkExecutor, count_jar: Path):
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from apps.clusters.models import Cluster
    from apps.projects import services
    from dice_console.celery import app as celery_app

    settings.DICE_LOCAL_ROOT = flink.cluster.config["root"]
    settings.DICE_DEPLOY_FILES = tmp_path / "files"
    settings.DICE_DEPLOY_POLL_INTERVAL = 0.1
    settings.DICE_DEPLOY_TIMEOUT = 180
    settings.DICE_DEPLOY_DEGRADED_GRACE = 5
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    user = get_user_model().objects.create_user("fiona")
    org = make_org(user, "acme")
    project = services.create_project(user, org, slug="data")
    app = services.create_application(user, project, slug="batch")
    cluster, _ = Cluster.objects.get_or_create(name="flink-local", defaults={"kind": "flink", "all_organizations": True})
    project.workspaces.get(kind="DEV").data_clusters.set([cluster])
    release = tmp_path / "release"
    (release / "jobs").mkdir(parents=True)
    shutil.copy(count_jar, release / "jobs" / "count.jar")
    api = APIClient()
    api.force_authenticate(user)
    made: list[int] = []
    try:
        yield {"api": api, "app": app, "project": project, "user": user, "files": make_archive(release),
               "runtimes": made}
    finally:
        for runtime in made:
            api.delete(f"/api/runtimes/{runtime}/")
        celery_app.conf.task_always_eager = eager


def deploy(console, spec: str, expect: int = 201) -> dict:
    answer = console["api"].post("/api/deployments/", {
        "application": console["app"].pk, "workspace": "DEV", "runtime": "main", "spec_text": spec,
        "files_base64": base64.b64encode(console["files"]).decode()}, format="json")
    assert answer.status_code == expect, answer.content
    made = answer.json()
    if expect == 201 and made["runtime"] not in console["runtimes"]:
        console["runtimes"].append(made["runtime"])
    return made


def deployment(console, made: dict) -> dict:
    return console["api"].get(f"/api/deployments/{made['id']}/").json()


ENV_SPEC = """
version: "2.0"
envs:
  FROM_FILE: file-value
jobs:
  wordcount:
    engine: flink
    resource: jobs/count.jar
    class: Count
    args: [env, "FROM_FILE,FROM_CONFIG,FROM_CONSOLE,REDIS_PORT,DICE_RUNTIME_NAME"]
    flinkConf:
      parallelism: 1
    envs:
      FROM_CONFIG: "c-((BATCH_TOKEN))"
addons:
  cache:
    plan: redis:basic
"""


def test_a_job_runs_on_deploy_to_its_end_with_the_env_every_job_gets(console, flink: FlinkExecutor):
    from apps.deploy.variables import set_variable
    from apps.pipelines.services import set_config

    set_config(console["user"], console["project"], key="BATCH_TOKEN", value="tok3n", secret=True)
    set_variable(console["user"], console["app"], "DEV", name="FROM_CONSOLE", value="console-value")
    made = deploy(console, ENV_SPEC)
    done = wait_for(lambda: (d := deployment(console, made))["status"] in ("healthy", "failed") and d, 180,
                    "the deployment to end")
    assert done["status"] == "healthy", done
    job = done["progress"]["jobs"]["wordcount"]
    assert job["state"] == "succeeded", job

    runtime = console["api"].get(f"/api/runtimes/{made['runtime']}/").json()
    port = next(a for a in runtime["status"]["addons"] if a["name"] == "cache")
    assert port["health"] == "Healthy"
    jobs = {j["name"]: j for j in runtime["status"]["jobs"]}
    assert jobs["wordcount"]["state"] == "succeeded" and jobs["wordcount"]["run"].startswith("wordcount-")
    # the job's main() saw the file's envs, the config, the console variable, the addon, the platform's
    redis_port = console_redis_port(console, made["runtime"])
    tag = f"file-value_c-tok3n_console-value_{redis_port}_main"
    assert wait_for(lambda: taskmanager_counts(flink, tag), 30, "the job's output") == [1000]

    log = console["api"].get(f"/api/runtimes/{made['runtime']}/job-log/", {"job": "wordcount"}).json()
    assert log["run"] == jobs["wordcount"]["run"]
    assert any("FINISHED" in line for line in log["lines"]), log

    browser = Client()
    browser.force_login(console["user"])
    page = browser.get(runtime["page"])
    assert b'id="job-wordcount"' in page.content and jobs["wordcount"]["run"].encode() in page.content
    log_page = browser.get(f"{runtime['page']}jobs/wordcount/log/")
    assert log_page.status_code == 200 and b"FINISHED" in log_page.content

    # the same release deployed again runs nothing again: still one run, the first one
    answer = console["api"].post("/api/deployments/", {"application": console["app"].pk, "workspace": "DEV",
                                                       "runtime": "main", "release": made["release"]}, format="json")
    assert answer.status_code == 201, answer.content
    again = answer.json()
    wait_for(lambda: deployment(console, again)["status"] == "healthy", 120, "the second deployment")
    runtime = console["api"].get(f"/api/runtimes/{made['runtime']}/").json()
    assert {j["name"]: j for j in runtime["status"]["jobs"]}["wordcount"]["run"] == jobs["wordcount"]["run"]
    assert taskmanager_counts(flink, tag) == [1000]


def console_redis_port(console, runtime_id: int) -> str:
    from django.conf import settings

    from apps.deploy.models import Runtime
    from apps.deploy.refs import runtime_ref
    from scheduler.base import ClusterRef
    from scheduler.local import create_executor as local_executor

    ref = runtime_ref(Runtime.objects.get(pk=runtime_id))
    local = local_executor(ClusterRef(name="local", kind="local", config={"root": str(settings.DICE_LOCAL_ROOT)}))
    return str(local.ports.get(f"{ref.namespace}/addon/cache/0"))


FAILING = """
version: "2.0"
jobs:
  broken:
    engine: flink
    resource: jobs/count.jar
    class: Count
    args: [fail, broken]
    properties:
      restart-strategy.type: none
"""


def test_a_failing_job_fails_the_deployment_naming_it_with_its_exception(console):
    made = deploy(console, FAILING)
    done = wait_for(lambda: (d := deployment(console, made))["status"] in ("healthy", "failed") and d, 180,
                    "the deployment to end")
    assert done["status"] == "failed", done
    assert "broken" in done["message"], done
    runtime = console["api"].get(f"/api/runtimes/{made['runtime']}/").json()
    job = {j["name"]: j for j in runtime["status"]["jobs"]}["broken"]
    assert job["state"] == "failed" and "FAILED" in job["message"], job


STREAMING = """
version: "2.0"
jobs:
  forever:
    engine: flink
    resource: jobs/count.jar
    class: Count
    args: [stream, forever]
"""


def test_a_running_job_is_cancelled_with_the_cli(console, flink: FlinkExecutor, dice_cli):
    made = deploy(console, STREAMING)
    runtime_id = made["runtime"]
    cli = dice_cli(console["user"])

    def running():
        code, out, err = cli("runtime", "jobs", "acme/data/batch", "-w", "DEV", "--format", "json")
        assert code == 0, err
        jobs = json.loads(out)
        return jobs and jobs[0]["state"] == "running" and jobs[0]

    job = wait_for(running, 120, "the job to run")
    code, out, err = cli("runtime", "cancel-job", "acme/data/batch", "-w", "DEV", "forever")
    assert code == 0, err
    assert f"Cancelled {job['run']} of job forever" in out
    wait_for(lambda: console["api"].get(f"/api/runtimes/{runtime_id}/").json()["status"]["jobs"][0]["state"]
             == "cancelled", 60, "the job to be cancelled")
    code, out, err = cli("runtime", "job-log", "acme/data/batch", "-w", "DEV", "forever")
    assert code == 0, err
    assert out.startswith(f"job forever: run {job['run']} cancelled") and "CANCELED" in out
    missing = console["api"].post(f"/api/runtimes/{runtime_id}/cancel-job/", {"job": "nope"}, format="json")
    assert missing.status_code == 400 and b"nope" in missing.content


SCHEDULED = """
version: "2.0"
jobs:
  nightly:
    engine: flink
    resource: jobs/count.jar
    class: Count
    args: [batch, nightly]
    schedule: "* * * * *"
"""


def test_a_scheduled_job_runs_when_the_beat_fires_once_per_minute(console, flink: FlinkExecutor):
    made = deploy(console, SCHEDULED)
    wait_for(lambda: deployment(console, made)["status"] == "healthy", 120, "the deployment")
    runtime = console["api"].get(f"/api/runtimes/{made['runtime']}/").json()
    job = {j["name"]: j for j in runtime["status"]["jobs"]}["nightly"]
    assert job["state"] == "pending" and "no run yet" in job["message"]
    later = time.time() + 61
    fired = flink.fire_schedules(now=later)
    assert len(fired) == 1 and fired[0].startswith("nightly-"), fired
    assert flink.fire_schedules(now=later + 1) == []  # the same minute: nothing more
    from apps.deploy.models import Runtime
    from apps.deploy.refs import runtime_ref
    from tests.flink.conftest import finished

    ns = runtime_ref(Runtime.objects.get(pk=made["runtime"])).namespace
    assert finished(flink, fired[0], ns, 120).state is JobState.SUCCEEDED
    assert wait_for(lambda: taskmanager_counts(flink, "nightly"), 30, "the run's output") == [1000]


def test_a_run_over_its_active_deadline_is_cancelled_and_shown_failed(flink: FlinkExecutor, count_jar: Path, tmp_path):
    """On the executor itself (no console): a streaming job given as a job, with a 5 s deadline."""
    from diceyml import parse_dice_yml
    from scheduler.base import Health, RuntimeRef, ServiceGroup

    release = tmp_path / "release"
    (release / "jobs").mkdir(parents=True)
    shutil.copy(count_jar, release / "jobs" / "count.jar")
    release.chmod(0o755)
    spec = parse_dice_yml(STREAMING + "    active_deadline: 5\n", workspace="DEV")
    runtime = RuntimeRef("acme", "data", "deadline", "DEV", "main")
    try:
        flink.apply(ServiceGroup(runtime, spec, release="r1", workdir=str(release)))
        run = flink.status(runtime).jobs["forever"].name
        status = wait_for(lambda: (s := flink.status(runtime)).jobs["forever"].state is JobState.FAILED and s, 120,
                          "the run to time out")
        assert status.health is Health.DEGRADED and "timed out after 5s" in status.jobs["forever"].message
        # nothing of it runs on: the Flink job cancelled, or (a slow submission) its client stopped at
        # the deadline before it submitted anything
        # (each status read cancels again a run found still going past its deadline: one cancelled
        # while its client was still submitting it)
        assert wait_for(lambda: flink.status(runtime) and flink.jobs().status(run, runtime.namespace).state.finished,
                        60, "the run to end on the cluster")
        assert flink.jobs().flink_state(run, runtime.namespace) in ("", "CANCELED")
        assert "timed out" in flink.status(runtime).jobs["forever"].message  # still shown as the timeout
    finally:
        flink.destroy(runtime)
