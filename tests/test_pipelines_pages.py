"""Pipeline pages: list, run (with the SVG graph and the htmx partial), log; isolation."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

SRC = """
version: "1.1"
stages:
  - stage:
      - custom-script: {alias: build, commands: ["echo hi"]}
  - stage:
      - manual-review: {alias: approval}
"""


def _base(tenant):
    return f"/orgs/{tenant.org.slug}/{tenant.project.slug}/{tenant.app.slug}/pipelines/"


def test_list_run_and_log_pages(tenant_a, tenant_b):
    from apps.pipelines import services, states, steplogs

    services.save_definition(tenant_a.owner, tenant_a.app, source=SRC, name="ci")
    client = tenant_a.browser_client()
    page = client.get(_base(tenant_a))
    assert page.status_code == 200 and b"ci" in page.content and b"No runs yet" in page.content

    response = client.post(_base(tenant_a), {"source": SRC, "workspace": "DEV", "params": ""})
    assert response.status_code == 302
    run = tenant_a.app.pipeline_runs.get()
    assert response["Location"] == run.get_absolute_url()
    build, approval = run.tasks.order_by("position")
    run.refresh_from_db()
    if run.status == "queued":
        states.move_run(run, "running")
    states.move_task(build, "running")
    steplogs.append_lines(build, ["hello from build"])
    states.move_task(build, "success")
    states.move_task(approval, "running")
    type(approval).objects.filter(pk=approval.pk).update(started=run.created)

    page = client.get(run.get_absolute_url())
    html = page.content.decode()
    assert page.status_code == 200
    assert "<svg" in html and 'class="dag-task status-success"' in html and "status-running" in html
    assert 'data-poll-ms="1500"' in html and "Approve" in html and "Cancel" in html
    partial = client.get(run.get_absolute_url(), HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and b"<html" not in partial.content and b"<svg" in partial.content

    log = client.get(build.get_log_url())
    assert log.status_code == 200 and b"hello from build" in log.content

    approve = client.post(run.get_absolute_url() + "approve/", {"task": "approval"})
    assert approve.status_code == 302
    approval.refresh_from_db()
    assert approval.status == "success" and approval.review == "approved"

    other = tenant_b.browser_client()
    assert other.get(run.get_absolute_url()).status_code == 404
    assert other.get(build.get_log_url()).status_code == 404
    assert other.get(_base(tenant_a)).status_code == 404


def test_application_page_links_to_pipelines(tenant_a):
    page = tenant_a.browser_client().get(tenant_a.app.get_absolute_url())
    assert _base(tenant_a).encode() in page.content


def test_an_invalid_pipeline_shows_its_errors(tenant_a):
    response = tenant_a.browser_client().post(_base(tenant_a), {"source": "version: '1.1'\nstages: 3\n"})
    assert response.status_code == 422 and b"stages" in response.content
