# ruff: noqa: F811
"""Item 3: branch rules, webhook secrets and schedules that target a workspace need the right to
deploy there; automatic runs into STAGING and PROD are checked against the rule's creator and the
definition's author when they run; a protected workspace's deploy step waits for a review."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from django.core.exceptions import PermissionDenied

from tests.pipelines_helpers import engine, retry_locked, wait_until  # noqa: F401
from tests.security.conftest import Http, http

ON_PUSH = """
version: "1.1"
on:
  push:
    branches: [main]
stages:
  - stage:
      - echo: {params: {msg: deployed}}
"""


def _push_signed(live, app, secret: str, branch: str = "main"):
    body = json.dumps({"ref": f"refs/heads/{branch}", "after": "abc123",
                       "repository": {"clone_url": "https://git.example/a.git"},
                       "head_commit": {"message": "fix", "author": {"name": "Dev"}}}).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return Http(live.url).post(f"/api/webhooks/github/{app.pk}/", data=body,
                               headers={"Content-Type": "application/json", "X-GitHub-Event": "push",
                                        "X-Hub-Signature-256": signature})


def test_the_issues_attack_a_developer_routes_main_to_prod(live, world):
    """A developer makes a branch rule main -> PROD and a webhook secret of their choice: both refused."""
    from apps.pipelines import services
    from apps.pipelines.models import PipelineRun

    services.save_definition(world.a.users["owner"], world.a.app, name="ci", source=ON_PUSH)
    dev = http(live, world.token(world.a.users["developer"]))
    project = world.a.project.pk
    r = dev.post("/api/branch-rules/", json={"project": project, "pattern": "main", "workspace": "PROD"})
    assert r.status_code == 403, r.text
    assert dev.post("/api/branch-rules/", json={"project": project, "pattern": "feature/*",
                                                "workspace": "DEV"}).status_code == 201
    lead = http(live, world.token(world.a.users["lead"]))
    assert lead.post("/api/branch-rules/", json={"project": project, "pattern": "main",
                                                 "workspace": "PROD"}).status_code == 201
    r = dev.post("/api/project-configs/", json={"project": project, "key": "webhook_secret", "value": "mine",
                                                "secret": True})
    assert r.status_code == 403, r.text
    assert _push_signed(live, world.a.app, "mine").status_code == 403  # no secret: nothing signed by it
    assert not PipelineRun.objects.exists()
    # Nor may the developer retarget or delete the lead's rule.
    from apps.pipelines.models import BranchRule

    rule_id = BranchRule.objects.get(pattern="main").pk
    assert dev.patch(f"/api/branch-rules/{rule_id}/", json={"workspace": "DEV"}).status_code == 403
    assert dev.delete(f"/api/branch-rules/{rule_id}/").status_code == 403


def test_a_schedule_needs_the_right_to_deploy_where_it_runs(live, world):
    from apps.pipelines import services

    services.save_branch_rule(world.a.users["owner"], world.a.project, pattern="main", workspace="PROD")
    cron = ON_PUSH.replace("on:\n  push:\n    branches: [main]\n", 'cron: "*/5 * * * *"\n')
    dev = http(live, world.token(world.a.users["developer"]))
    r = dev.post("/api/pipelines/", json={"application": world.a.app.pk, "name": "nightly", "branch": "main",
                                          "source": cron})
    assert r.status_code == 403, r.text
    r = dev.post("/api/pipelines/", json={"application": world.a.app.pk, "name": "nightly", "branch": "feature/x",
                                          "source": cron})
    assert r.status_code == 201, r.text  # no rule matches: DEV


def test_automatic_runs_into_prod_are_checked_when_they_run(live, world):
    from apps.pipelines import services, triggers
    from apps.pipelines.models import PipelineRun
    from apps.projects import services as project_services
    from apps.projects.models import AuditEvent, Member

    owner, lead = world.a.users["owner"], world.a.users["lead"]
    services.save_definition(owner, world.a.app, name="ci", source=ON_PUSH)
    services.set_config(owner, world.a.project, key="webhook_secret", value="shh", secret=True)
    services.save_branch_rule(lead, world.a.project, pattern="main", workspace="PROD")
    # The lead who made the rule is demoted: the next push into PROD is refused, and says why.
    project_services.change_member_role(owner, Member.objects.get(user=lead, project__isnull=True), "developer")
    r = _push_signed(live, world.a.app, "shh")
    assert r.status_code == 200 and r.json()["runs"] == [], r.text
    assert "may not deploy to PROD" in " ".join(r.json()["notes"])
    assert not PipelineRun.objects.exists()
    assert AuditEvent.objects.filter(action="run_refused").exists()
    # Promoted again, the same push runs.
    project_services.change_member_role(owner, Member.objects.get(user=lead, project__isnull=True), "lead")
    r = _push_signed(live, world.a.app, "shh")
    assert r.status_code == 202 and len(r.json()["runs"]) == 1, r.text
    # A cron run of a definition whose author lost the right is refused the same way.
    cron = ON_PUSH.replace("on:\n  push:\n    branches: [main]\n", 'cron: "*/5 * * * *"\n')
    definition = services.save_definition(lead, world.a.app, name="nightly", source=cron, branch="main")
    project_services.change_member_role(owner, Member.objects.get(user=lead, project__isnull=True), "guest")
    assert triggers.run_from_cron(definition.pk) is None
    assert PipelineRun.objects.count() == 1


DEPLOY = """
version: "1.1"
stages:
  - stage:
      - dice: {params: {release_id: "%s", runtime: main}}
"""
SPEC = """
version: "2.0"
services:
  web:
    cmd: sleep 60
    resources: {cpu: 0.1, mem: 32}
"""


def test_a_protected_workspace_waits_for_a_review(engine, world):
    from apps.deploy import services as deploy_services
    from apps.deploy.models import Deployment
    from apps.pipelines import services
    from apps.projects import services as project_services

    owner, ops, dev = world.a.users["owner"], world.a.users["ops"], world.a.users["developer"]
    prod = world.a.project.workspaces.get(kind="PROD")
    with pytest.raises(PermissionDenied):
        project_services.update_workspace(dev, prod, protected=True)
    project_services.update_workspace(owner, prod, protected=True)
    release = deploy_services.create_release(owner, world.a.app, spec_text=SPEC)
    run = engine.run(world.a, DEPLOY % release.pk, workspace="PROD", user=owner)
    wait_until(lambda: (engine.tasks(run)["dice"].outputs or {}).get("awaiting_review") == "PROD", 30,
               "the deploy to wait for its review")
    assert not Deployment.objects.exists()
    task = engine.tasks(run)["dice"]
    assert task.status == "running"
    with pytest.raises(PermissionDenied):
        services.review_task(dev, task, approve=True)
    retry_locked(services.review_task, ops, task, approve=True, comment="ship it")
    wait_until(lambda: Deployment.objects.exists(), 30, "the approved deploy to start")
    deployment = Deployment.objects.get()
    assert deployment.runtime.workspace == prod
    task = engine.tasks(run)["dice"]
    assert task.review == "approved" and task.reviewed_by == ops.username
