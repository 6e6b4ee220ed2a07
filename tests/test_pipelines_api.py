"""The pipelines API (isolation by tenant for every endpoint), webhooks, cron, state machines."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from tests.api_cases import ScopedAPICases, unique

pytestmark = pytest.mark.django_db

SIMPLE = """
version: "1.1"
on:
  push:
    branches: [main, "release/*"]
cron: "*/5 * * * *"
stages:
  - stage:
      - echo: {params: {msg: hi}}
"""


def _definition(tenant, source=SIMPLE, name=None):
    from apps.pipelines import services

    return services.save_definition(tenant.owner, tenant.app, source=source, name=name or unique("def"))


def _run(tenant):
    from apps.pipelines import services

    return services.start_run(tenant.owner, tenant.app, source=SIMPLE)


class TestPipelineDefinitionAPI(ScopedAPICases):
    basename = "pipeline"
    update_data = {"branch": "develop"}

    def make(self, tenant):
        return _definition(tenant)

    def create_data(self, tenant):
        return {"application": tenant.app.pk, "name": unique("api"), "source": SIMPLE}


class TestPipelineRunAPI(ScopedAPICases):
    basename = "pipelinerun"
    updatable = deletable = False

    def make(self, tenant):
        return _run(tenant)

    def create_data(self, tenant):
        return {"application": tenant.app.pk, "source": SIMPLE, "workspace": "dev"}


class TestTaskRunAPI(ScopedAPICases):
    basename = "taskrun"
    updatable = deletable = False

    def make(self, tenant):
        return _run(tenant).tasks.first()


class TestProjectConfigAPI(ScopedAPICases):
    basename = "projectconfig"
    update_data = {"value": "changed"}

    def make(self, tenant):
        from apps.pipelines import services

        return services.set_config(tenant.owner, tenant.project, key=unique("key"), value="v")

    def create_data(self, tenant):
        return {"project": tenant.project.pk, "key": unique("k"), "value": "x"}


class TestBranchRuleAPI(ScopedAPICases):
    basename = "branchrule"
    update_data = {"workspace": "TEST"}

    def make(self, tenant):
        from apps.pipelines import services

        return services.save_branch_rule(tenant.owner, tenant.project, pattern=unique("feature/*"), workspace="DEV")

    def create_data(self, tenant):
        return {"project": tenant.project.pk, "pattern": unique("hotfix/*"), "workspace": "STAGING"}


def test_secret_config_values_are_write_only(tenant_a):
    api = tenant_a.api()
    made = api.post("/api/project-configs/", {"project": tenant_a.project.pk, "key": "pw", "value": "hunter22",
                                              "secret": True}, format="json")
    assert made.status_code == 201, made.content
    assert made.json()["value"] == "******"
    assert api.get(f"/api/project-configs/{made.json()['id']}/").json()["value"] == "******"
    from apps.pipelines.models import ProjectConfig
    from apps.projects.models import AuditEvent

    row = ProjectConfig.objects.get(key="pw")
    assert row.value != "hunter22" and row.plain_value() == "hunter22"
    assert "hunter22" not in json.dumps(list(AuditEvent.objects.values("before", "after")))


def test_run_create_refuses_an_invalid_pipeline_and_missing_params(tenant_a):
    api = tenant_a.api()
    bad = api.post("/api/pipeline-runs/", {"application": tenant_a.app.pk, "source": "version: '1.1'\nstages: 3\n"},
                   format="json")
    assert bad.status_code == 400 and "stages" in json.dumps(bad.json())
    src = 'version: "1.1"\nparams: [{name: env, required: true}]\nstages:\n  - stage:\n      - echo: {}\n'
    missing = api.post("/api/pipeline-runs/", {"application": tenant_a.app.pk, "source": src}, format="json")
    assert missing.status_code == 400 and "param 'env' is required" in json.dumps(missing.json())
    from apps.pipelines.models import PipelineRun

    assert not PipelineRun.objects.exists()


def test_a_guest_cannot_start_or_cancel_runs(tenant_a):
    from rest_framework.test import APIClient

    from apps.projects import services as project_services

    guest = tenant_a.add_user("gus", "guest")
    _, key = project_services.create_token(guest, name="t")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = api.post("/api/pipeline-runs/", {"application": tenant_a.app.pk, "source": SIMPLE}, format="json")
    assert response.status_code == 403
    run = _run(tenant_a)
    assert api.post(f"/api/pipeline-runs/{run.pk}/cancel/").status_code == 403


def test_task_log_after(tenant_a):
    from apps.pipelines import steps

    task = _run(tenant_a).tasks.first()
    steps.append_lines(task, [f"line {i}" for i in range(1, 6)])
    body = tenant_a.api().get(f"/api/task-runs/{task.pk}/log/", {"after": 3}).json()
    assert [line["number"] for line in body["lines"]] == [4, 5]
    assert body["last_line"] == 5 and body["complete"] is False


# ---- state machines ------------------------------------------------------------------------------


def test_illegal_transitions_are_refused_and_history_is_recorded(tenant_a):
    from apps.pipelines import states

    run = _run(tenant_a)
    task = run.tasks.get()
    with pytest.raises(states.IllegalTransition, match="cannot go from queued to success"):
        states.move_task(task, "success")
    assert states.move_task(task, "running", "claimed")
    assert states.move_task(task, "success", "done")
    with pytest.raises(states.IllegalTransition, match="finished"):
        states.move_task(task, "running")
    assert [(t.from_status, t.to_status, t.reason) for t in task.transitions.all()] == [
        ("queued", "running", "claimed"), ("running", "success", "done")]
    # a stale copy loses the compare-and-set and writes nothing
    stale = type(task).objects.get(pk=task.pk)
    stale.status = "running"
    assert not states.move_task(stale, "failed", "late")
    assert task.transitions.count() == 2
    run.refresh_from_db()
    with pytest.raises(states.IllegalTransition):
        states.move_run(run, "success")
    assert states.move_run(run, "running") and states.move_run(run, "cancelled", "stop")
    assert [t.to_status for t in run.transitions.all()] == ["running", "cancelled"]


# ---- cron -----------------------------------------------------------------------------------------


def test_cron_schedule_is_created_from_the_definition_and_removed_with_it(tenant_a):
    from django_celery_beat.models import PeriodicTask

    from apps.pipelines import services, triggers

    definition = _definition(tenant_a)
    task = PeriodicTask.objects.get(name=triggers.cron_task_name(definition))
    assert task.task == "dice.pipelines.cron_run" and json.loads(task.args) == [definition.pk]
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("*/5", "*", "*")
    services.save_definition(tenant_a.owner, tenant_a.app, name=definition.name,
                             source=SIMPLE.replace('"*/5 * * * *"', '"0 30 2 ? * MON"'))
    task.refresh_from_db()
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("30", "2", "MON")
    run = triggers.run_from_cron(definition.pk)
    assert run.trigger == "cron" and run.definition == definition and run.tasks.count() == 1
    services.save_definition(tenant_a.owner, tenant_a.app, name=definition.name, source=SIMPLE.replace("cron:", "#"))
    assert not PeriodicTask.objects.filter(name=triggers.cron_task_name(definition)).exists()


# ---- webhooks -------------------------------------------------------------------------------------


def _push(branch="main"):
    return {"ref": f"refs/heads/{branch}", "after": "abc123", "repository": {"clone_url": "https://git.example/a.git"},
            "head_commit": {"message": "fix", "author": {"name": "Ann"}}}


def _signed(provider, secret, body):
    if provider == "github":
        return {"HTTP_X_GITHUB_EVENT": "push",
                "HTTP_X_HUB_SIGNATURE_256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}
    if provider == "gitea":
        return {"HTTP_X_GITEA_EVENT": "push",
                "HTTP_X_GITEA_SIGNATURE": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}
    return {"HTTP_X_GITLAB_EVENT": "Push Hook", "HTTP_X_GITLAB_TOKEN": secret}


@pytest.mark.parametrize("provider", ["github", "gitlab", "gitea"])
def test_webhook_signatures_branches_and_rules(provider, tenant_a):
    from rest_framework.test import APIClient

    from apps.pipelines import services
    from apps.pipelines.models import PipelineRun

    services.set_config(tenant_a.owner, tenant_a.project, key="webhook_secret", value="shh", secret=True)
    services.save_branch_rule(tenant_a.owner, tenant_a.project, pattern="main", workspace="STAGING")
    services.save_branch_rule(tenant_a.owner, tenant_a.project, pattern="feature/*", workspace="DEV")
    _definition(tenant_a, name="ci")
    client = APIClient()
    url = f"/api/webhooks/{provider}/{tenant_a.app.pk}/"

    def post(payload, secret="shh"):
        body = json.dumps(payload).encode()
        return client.post(url, body, content_type="application/json", **_signed(provider, secret, body))

    bad = post(_push(), secret="wrong")
    assert bad.status_code == 403 and not PipelineRun.objects.exists()
    unsigned = client.post(url, json.dumps(_push()), content_type="application/json")
    assert unsigned.status_code == 403 and not PipelineRun.objects.exists()

    wrong_branch = post(_push("feature/x"))  # a branch rule exists, but on.push does not list it
    assert wrong_branch.status_code == 200 and wrong_branch.json()["runs"] == []
    assert not PipelineRun.objects.exists()

    ok = post(_push("main"))
    assert ok.status_code == 202, ok.content
    run = PipelineRun.objects.get(pk=ok.json()["runs"][0])
    assert run.workspace == "STAGING" and run.trigger == "push"
    assert run.trigger_payload["branch"] == "main" and run.trigger_payload["commit"] == "abc123"

    no_rule = post(_push("release/1.0"))  # on.push matches, no branch rule does
    assert no_rule.json()["runs"] == [] and "no branch rule" in " ".join(no_rule.json()["notes"])
    assert PipelineRun.objects.count() == 1


def test_webhook_of_another_provider_is_404_and_an_unknown_app_is_a_bad_signature(tenant_a, client):
    assert client.post("/api/webhooks/bitbucket/1/", {}).status_code == 404
    unknown = client.post("/api/webhooks/github/999999/", {})
    no_secret = client.post(f"/api/webhooks/github/{tenant_a.app.pk}/", {})
    assert unknown.status_code == no_secret.status_code == 403
    assert unknown.json() == no_secret.json()
