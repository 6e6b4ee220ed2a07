# ruff: noqa: F811
"""Preview environments: a pull (merge) request runs the `on.merge` pipelines, whose deploy goes to
the DEV runtime pr-<N>, recorded with its URL on the run and the application page; closing or
merging the request, deleting its branch, or its expiry tears it down, in the audit log."""

from __future__ import annotations

import urllib.request
from datetime import timedelta

import pytest

from tests.pipelines_helpers import engine  # noqa: F401
from tests.test_webhooks_providers import SECRET, deliver, fixture

pytestmark = pytest.mark.django_db(transaction=True)

PREVIEW = """\
version: "1.1"
on:
  merge:
    branches: [main]
stages:
  - stage:
      - custom-script:
          alias: make
          commands:
            - |
              cat > dice.yml <<'EOF'
              version: "2.0"
              services:
                web:
                  cmd: python3 -m http.server $PORT
                  ports:
                    - port: 8080
                      expose: true
                  resources: {cpu: 0.1, mem: 64}
              EOF
  - stage:
      - release: {params: {dice_yml: "${{ dirs.make }}/dice.yml"}}
  - stage:
      - dice: {alias: deploy, timeout: 120, params: {release_id: "${{ outputs.release.releaseID }}"}}
"""


def _hook(tenant):
    from apps.pipelines import services

    services.set_config(tenant.owner, tenant.project, key="webhook_secret", value=SECRET, secret=True)
    services.save_definition(tenant.owner, tenant.app, source=PREVIEW, name="preview")


def test_a_pull_request_deploys_a_preview_and_closing_it_removes_it(engine, tenant_a, tmp_path, settings):
    from apps.deploy.models import Runtime
    from apps.pipelines.models import PipelineRun, PreviewEnvironment
    from apps.projects.models import AuditEvent

    settings.DICE_DEPLOY_FILES = str(tmp_path / "files")
    _hook(tenant_a)
    opened = fixture("github_pull_request")
    response = deliver(tenant_a, "github", opened, "pull_request")
    assert response.status_code == 202, response.content
    run = engine.wait(PipelineRun.objects.get(), timeout=120)
    tasks = engine.tasks(run)
    assert run.status == "success", (run.reason, {a: (t.status, t.reason) for a, t in tasks.items()})
    preview = PreviewEnvironment.objects.get()
    assert preview.number == 1347 and preview.branch == "new-topic" and preview.run_id == run.pk
    assert preview.runtime.name == "pr-1347" and preview.runtime.workspace.kind == "DEV"
    assert preview.url.startswith("http") and tasks["deploy"].outputs["preview_url"] == preview.url
    with urllib.request.urlopen(preview.url, timeout=10) as answer:
        assert answer.status == 200
    page = tenant_a.browser_client().get(tenant_a.app.get_absolute_url()).content.decode()
    assert preview.url in page and "pr-1347" in page
    listed = tenant_a.api().get(f"/api/applications/{tenant_a.app.pk}/previews/").json()
    assert [(p["number"], p["url"]) for p in listed] == [(1347, preview.url)]

    closed = fixture("github_pull_request")
    closed["action"] = "closed"
    response = deliver(tenant_a, "github", closed, "pull_request")
    assert response.status_code == 200, response.content
    assert "preview pr-1347 removed (merge request 1347 closed)" in response.json()["notes"]
    assert not Runtime.objects.filter(name="pr-1347").exists() and not PreviewEnvironment.objects.exists()
    event = AuditEvent.objects.get(action="preview_teardown")
    assert event.before["reason"] == "merge request 1347 closed" and event.application_id == tenant_a.app.pk
    assert PipelineRun.objects.count() == 1  # closing started nothing


def _preview_runtime(tenant, number: int, branch: str, *, days_left: float):
    from django.utils import timezone

    from apps.deploy import deployments
    from apps.deploy.services import create_release
    from apps.pipelines.models import PreviewEnvironment

    release = create_release(tenant.owner, tenant.app, spec_text=(
        'version: "2.0"\nservices:\n  web:\n    cmd: sleep 60\n    resources: {cpu: 0.1, mem: 32}\n'))
    runtime = deployments.deploy(tenant.owner, tenant.app, "DEV", release=release, runtime_name=f"pr-{number}").runtime
    return PreviewEnvironment.objects.create(application=tenant.app, number=number, branch=branch, runtime=runtime,
                                             expires=timezone.now() + timedelta(days=days_left))


def test_previews_expire_and_go_with_their_branch(tenant_a, tmp_path, settings):
    from apps.deploy.models import Runtime
    from apps.pipelines import previews
    from apps.pipelines.models import PreviewEnvironment
    from apps.projects.models import AuditEvent

    settings.DICE_DEPLOY_FILES = str(tmp_path / "files")
    settings.DICE_LOCAL_ROOT = str(tmp_path / "local")
    _hook(tenant_a)
    _preview_runtime(tenant_a, 7, "old-topic", days_left=-0.01)
    _preview_runtime(tenant_a, 8, "feature/old", days_left=3)
    assert previews.expire() == ["preview pr-7 removed (expired)"]
    assert list(PreviewEnvironment.objects.values_list("number", flat=True)) == [8]
    assert AuditEvent.objects.get(action="preview_teardown").before["reason"] == "expired"

    response = deliver(tenant_a, "github", fixture("github_delete_push"), "push")  # deletes feature/old
    assert "preview pr-8 removed (branch feature/old deleted)" in response.json()["notes"]
    assert not Runtime.objects.filter(name__startswith="pr-").exists() and not PreviewEnvironment.objects.exists()


def test_the_preview_lifetime_is_a_project_setting(tenant_a):
    from apps.pipelines import previews, services

    assert previews.preview_days(tenant_a.project.pk) == 7
    services.set_config(tenant_a.owner, tenant_a.project, key="preview_days", value="2")
    assert previews.preview_days(tenant_a.project.pk) == 2
