"""Runtime pages on the fake cluster: the application page's runtimes per workspace, a runtime's
live services and history with its buttons, the polled partial, the deploy form of a release, and
who sees which button."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from apps.deploy.models import Deployment, Runtime
from apps.deploy.tasks import run_deployment
from tests import test_deployments_support as support
from tests.test_deployments_support import bind_to, release_of

fake, fake_cluster, fast_rollouts = support.fake, support.fake_cluster, support.fast_rollouts


@pytest.fixture(autouse=True)
def _fast(fast_rollouts):
    return fast_rollouts


def _args(tenant):
    return [tenant.org.slug, tenant.project.slug, tenant.app.slug]


def _deploy_form(client, tenant, release, **data):
    url = reverse("deploy:release_deploy", args=[*_args(tenant), release.version])
    return client.post(url, data)


def test_deploy_from_the_release_page_then_see_the_runtime(tenant_a, fake_cluster, fake):
    bind_to(tenant_a, fake_cluster)
    release = release_of(tenant_a)
    client = tenant_a.browser_client()
    page = client.get(release.get_absolute_url()).content.decode()
    assert reverse("deploy:release_deploy", args=[*_args(tenant_a), release.version]) in page
    r = _deploy_form(client, tenant_a, release, workspace="DEV", runtime="main")
    assert r.status_code == 302, r.content.decode()[:2000]
    runtime = Runtime.objects.get(name="main")
    assert r["Location"] == runtime.get_absolute_url()
    run_deployment(Deployment.objects.get(runtime=runtime).pk)

    page = client.get(runtime.get_absolute_url()).content.decode()
    assert "http://web.fake:8080" in page and "Healthy" in page
    assert "queued" in page and "deploying" in page and "healthy" in page  # the transitions
    for action in ("scale", "restart", "stop", "rollback"):
        assert reverse(f"deploy:runtime_{action}", args=[*_args(tenant_a), "DEV", "main"]) in page
    live = client.get(reverse("deploy:runtime_live", args=[*_args(tenant_a), "DEV", "main"]), HTTP_HX_REQUEST="true")
    assert live.status_code == 200 and 'data-poll-ms="10000"' in live.content.decode()  # steady: the fallback poll is slow

    app_page = client.get(tenant_a.app.get_absolute_url()).content.decode()
    assert "Runtimes" in app_page and runtime.get_absolute_url() in app_page and "Healthy" in app_page


def test_buttons_act_and_report(tenant_a, fake_cluster, fake):
    bind_to(tenant_a, fake_cluster)
    release = release_of(tenant_a)
    client = tenant_a.browser_client()
    _deploy_form(client, tenant_a, release, workspace="DEV", runtime="main")
    runtime = Runtime.objects.get(name="main")
    run_deployment(runtime.deployments.get().pk)
    url = lambda action: reverse(f"deploy:runtime_{action}", args=[*_args(tenant_a), "DEV", "main"])  # noqa: E731
    r = client.post(url("scale"), {"service": "web", "replicas": 4}, follow=True)
    assert "Scaled web to 4." in r.content.decode()
    r = client.post(url("scale"), {"service": "nope", "replicas": 1}, follow=True)
    assert "has no service" in r.content.decode()
    r = client.post(url("rollback"), {"release": release.pk}, follow=True)
    assert "Rolling back to v1" in r.content.decode()
    active = runtime.deployments.filter(status="queued").get()
    assert 'data-poll-ms="1000"' in r.content.decode()  # looks again every second while a rollout is under way
    r = client.post(url("cancel"), {"deployment": active.pk}, follow=True)
    assert f"Cancelled deployment #{active.pk}." in r.content.decode()
    assert client.get(url("delete")).status_code == 200
    r = client.post(url("delete"), {"confirm_name": "nope"})  # the runtime's name must be typed
    assert r.status_code == 422 and "Type main to confirm" in r.content.decode()
    assert Runtime.objects.filter(pk=runtime.pk).exists()
    r = client.post(url("delete"), {"confirm_name": runtime.name})
    assert r.status_code == 302 and r["Location"] == tenant_a.app.get_absolute_url()
    assert not Runtime.objects.filter(pk=runtime.pk).exists()


def test_developer_sees_only_the_workspaces_they_may_deploy_to(tenant_a, fake_cluster, fake):
    bind_to(tenant_a, fake_cluster)
    release = release_of(tenant_a, support.SPEC.replace("redis:basic", "redis:professional"))  # basic: not in PROD
    dev = tenant_a.add_user("dave", "developer")
    client = Client()
    client.force_login(dev)
    form = client.get(reverse("deploy:release_deploy", args=[*_args(tenant_a), release.version])).content.decode()
    assert 'value="DEV"' in form and 'value="TEST"' in form and 'value="PROD"' not in form
    r = _deploy_form(client, tenant_a, release, workspace="PROD", runtime="main")
    assert r.status_code == 200 and not Runtime.objects.exists()  # refused by the form's choices
    _deploy_form(tenant_a.browser_client(), tenant_a, release, workspace="PROD", runtime="main")
    prod = Runtime.objects.get(workspace__kind="PROD")
    page = client.get(prod.get_absolute_url()).content.decode()
    assert "Roll back" not in page and "Scale" not in page  # no buttons without deploy:PROD
    assert client.post(reverse("deploy:runtime_stop", args=[*_args(tenant_a), "PROD", "main"])).status_code == 403
    guest = tenant_a.add_user("gail", "guest")
    client.force_login(guest)
    assert client.get(reverse("deploy:release_deploy", args=[*_args(tenant_a), release.version])).status_code == 403


def test_other_organizations_runtime_pages_are_404(tenant_a, tenant_b, fake_cluster, fake):
    bind_to(tenant_b, fake_cluster)
    _deploy_form(tenant_b.browser_client(), tenant_b, release_of(tenant_b), workspace="DEV", runtime="main")
    theirs = Runtime.objects.get()
    client = tenant_a.browser_client()
    assert client.get(theirs.get_absolute_url()).status_code == 404
    stop = reverse("deploy:runtime_stop", args=[*_args(tenant_b), "DEV", "main"])
    assert client.post(stop).status_code == 404
    assert not [c for c in fake.calls if c[0] == "scale"]


def test_an_older_release_and_a_failed_one_are_named_before_deploying(tenant_a, fake_cluster, fake):
    bind_to(tenant_a, fake_cluster)
    first = release_of(tenant_a)
    second = release_of(tenant_a, support.SPEC.replace("web:1", "web:2"))
    client = tenant_a.browser_client()
    page = client.get(reverse("deploy:release_deploy", args=[*_args(tenant_a), first.version])).content.decode()
    assert "older than the newest release, v2" in page and "data-confirm=" in page
    page = client.get(reverse("deploy:release_deploy", args=[*_args(tenant_a), second.version])).content.decode()
    assert "older than" not in page

    # v2 fails on the runtime, then v1 is deployed: v2 is offered as "deploy failed v2 again", not a roll back.
    fake.fail_apply = "image pull failed"
    r = _deploy_form(client, tenant_a, second, workspace="DEV", runtime="main")
    runtime = Runtime.objects.get(name="main")
    run_deployment(Deployment.objects.get(runtime=runtime).pk)
    assert Deployment.objects.get(runtime=runtime).status == "failed"
    fake.fail_apply = ""
    r = _deploy_form(client, tenant_a, first, workspace="DEV", runtime="main")
    assert r.status_code == 302
    run_deployment(Deployment.objects.filter(runtime=runtime, release=first).get().pk)
    page = client.get(runtime.get_absolute_url()).content.decode()
    assert "Deploy failed v2 again" in page and "never became healthy here" in page
    assert "Roll back to v2" not in page
    assert "of v1 queued: its progress is shown below." in page  # the flash says queued, not done
