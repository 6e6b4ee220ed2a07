"""Issue 26 on the console: a custom addon takes connection values given through the API, the
runtime page and `dice runtime custom-addon`; ((KEY)) envs get the project's configs; a cluster
that cannot provide an addon type fails the deployment naming the type and the cluster."""

from __future__ import annotations

import json

import pytest

from apps.deploy import deployments
from apps.deploy.models import AddonInstance, Deployment
from apps.deploy.tasks import run_deployment
from apps.pipelines import services as pipeline_services
from apps.projects.models import AuditEvent
from tests import test_deployments_support as support
from tests.test_deployments_support import bind_to, release_of

fake, fake_cluster, fast_rollouts = support.fake, support.fake_cluster, support.fast_rollouts

SPEC = """
version: 2
services:
  web:
    image: web:1
    ports: [8080]
    envs:
      DB_URL: mysql://shop:((DB_PASSWORD))@db/shop
addons:
  ext:
    plan: custom
    options:
      URL: https://ext.example.com
"""


@pytest.fixture(autouse=True)
def _fast(fast_rollouts):
    return fast_rollouts


def deploy(tenant, cluster, text=SPEC, runtime="main"):
    bind_to(tenant, cluster)
    d = deployments.deploy(
        tenant.owner, tenant.app, "DEV", release=release_of(tenant, text), runtime_name=runtime
    )
    run_deployment(d.pk)
    return Deployment.objects.get(pk=d.pk)


def test_custom_addon_values_from_the_api_reach_the_next_deployment(tenant_a, fake_cluster, fake):
    pipeline_services.set_config(
        tenant_a.owner, tenant_a.project, key="DB_PASSWORD", value="s3cret", secret=True
    )
    first = deploy(tenant_a, fake_cluster)
    group = next(g for g in fake.groups.values() if g.runtime.runtime_id == first.runtime_id)
    assert group.secret_configs == {"DB_PASSWORD": "s3cret"} and group.addon_secrets["ext"] == {}
    api = tenant_a.api()
    url = f"/api/runtimes/{first.runtime_id}/custom-addons/"
    assert api.get(url).json() == {"ext": []}
    body = {"addon": "ext", "values": {"TOKEN": "tk-1", "HOST": "ext.internal"}}
    response = api.post(url, body, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"ext": ["HOST", "TOKEN"]}  # keys only: the values are never shown back
    instance = AddonInstance.objects.get(runtime_id=first.runtime_id, name="ext")
    assert "tk-1" not in instance.credentials
    event = AuditEvent.objects.filter(action="set_addon_values").latest("pk")
    assert event.after == {"keys": ["HOST", "TOKEN"]} and "tk-1" not in json.dumps(event.before or {})
    second = deploy(tenant_a, fake_cluster)
    group = next(g for g in fake.groups.values() if g.runtime.runtime_id == second.runtime_id)
    assert group.addon_secrets["ext"] == {"TOKEN": "tk-1", "HOST": "ext.internal"}


def test_custom_addon_values_are_refused_for_others_and_bad_input(tenant_a, tenant_b, fake_cluster, fake):
    first = deploy(tenant_a, fake_cluster)
    url = f"/api/runtimes/{first.runtime_id}/custom-addons/"
    assert tenant_b.api().post(url, {"addon": "ext", "values": {"A": "b"}}, format="json").status_code == 404
    guest = tenant_a.add_user("gwen", "guest")
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(guest)
    assert client.post(url, {"addon": "ext", "values": {"A": "b"}}, format="json").status_code in (403, 404)
    api = tenant_a.api()
    bad = api.post(url, {"addon": "nope", "values": {"A": "b"}}, format="json")
    assert bad.status_code == 400 and "no custom addon 'nope'" in bad.content.decode()
    bad = api.post(url, {"addon": "ext", "values": {"1X": "b"}}, format="json")
    assert bad.status_code == 400 and "not a valid key" in bad.content.decode()
    assert api.get(url).json() == {"ext": []}  # nothing was set by the refused requests


def test_the_runtime_page_shows_and_sets_custom_addon_values(tenant_a, fake_cluster, fake):
    first = deploy(tenant_a, fake_cluster)
    browser = tenant_a.browser_client()
    runtime = first.runtime
    page = browser.get(runtime.get_absolute_url())
    assert page.status_code == 200 and "Custom addons" in page.content.decode()
    action = runtime.get_absolute_url() + "addon-values/"
    response = browser.post(action, {"addon": "ext", "values": "TOKEN=tk-2\nHOST=h\n"})
    assert response.status_code == 302
    page = browser.get(runtime.get_absolute_url()).content.decode()
    assert "values given: HOST, TOKEN" in page and "tk-2" not in page
    response = browser.post(action, {"addon": "ext", "values": "no equals sign"}, follow=True)
    assert "one KEY=VALUE per line" in response.content.decode()


def test_a_missing_project_config_fails_the_deployment_naming_it(tenant_a, fake_cluster, fake, monkeypatch):
    from scheduler.specfill import check_secret_placeholders

    # The fake kind renders nothing: check the group as every real kind does before it starts.
    monkeypatch.setattr(support.FakeExecutor, "apply", lambda self, group: check_secret_placeholders(group))
    d = deploy(tenant_a, fake_cluster)
    assert d.status == "failed" and "((DB_PASSWORD))" in d.message and "names no project config" in d.message


@pytest.mark.django_db(transaction=True)
def test_dice_runtime_custom_addon(tenant_a, fake_cluster, fake, dice_cli, settings):
    first = deploy(tenant_a, fake_cluster)
    cli = dice_cli(tenant_a.owner)
    app = f"{tenant_a.org.slug}/{tenant_a.project.slug}/{tenant_a.app.slug}"
    code, out, err = cli(
        "runtime",
        "custom-addon",
        app,
        "-w",
        "DEV",
        "--addon",
        "ext",
        "--set",
        "TOKEN=tk-3",
        "--set",
        "URL=https://x",
    )
    assert code == 0, err
    assert "Set TOKEN, URL of custom addon ext" in out
    code, out, _ = cli("runtime", "custom-addon", app, "-w", "DEV")
    assert code == 0 and "ext: TOKEN, URL" in out and "tk-3" not in out
    code, out, _ = cli("runtime", "custom-addon", app, "-w", "DEV", "--format", "json")
    assert json.loads(out) == {"ext": ["TOKEN", "URL"]}
    code, _, err = cli("runtime", "custom-addon", app, "-w", "DEV", "--addon", "ext", "--set", "oops")
    assert code == 2 and "KEY=VALUE" in err
    instance = AddonInstance.objects.get(runtime_id=first.runtime_id, name="ext")
    from apps.deploy.addons import credentials

    assert credentials(instance) == {"TOKEN": "tk-3", "URL": "https://x"}
