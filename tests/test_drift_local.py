# ruff: noqa: F811
"""Drift on the local cluster: a runtime is in sync with its release until someone changes what
runs (a scale), then out of sync with the difference shown (API, runtime page, `dice runtime
diff`), and the sync action puts it back."""

from __future__ import annotations

import json

import pytest

from tests.pipelines_helpers import wait_until
from tests.test_runtime_local import local_cluster  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

SPEC = ('version: "2.0"\nservices:\n  web:\n    cmd: sleep 600\n    envs: {GREETING: hello}\n'
        '    resources: {cpu: 0.1, mem: 32}\n')


def _healthy(deployment):
    def check():
        deployment.refresh_from_db()
        return deployment.status == "healthy"

    wait_until(check, 60, f"deployment {deployment.pk} to be healthy")
    assert deployment.status == "healthy", deployment.message


def test_a_scaled_runtime_is_out_of_sync_until_synced(transactional_db, local_cluster, tenant_a, dice_cli):
    from apps.deploy import deployments
    from apps.deploy.services import create_release

    type(tenant_a.app).objects.filter(pk=tenant_a.app.pk).update(repo_url="")  # runs from an empty folder
    release = create_release(tenant_a.owner, tenant_a.app, spec_text=SPEC)
    deployment = deployments.deploy(tenant_a.owner, tenant_a.app, "DEV", release=release, runtime_name="main")
    _healthy(deployment)  # eager rollouts: already, once the deploy has returned
    runtime = deployment.runtime
    api = tenant_a.api()
    drift = api.get(f"/api/runtimes/{runtime.pk}/drift/").json()
    assert drift == {"sync": "in sync", "reason": "", "release": 1, "items": []}

    cli = dice_cli(tenant_a.owner)
    target = ["a-org/a-proj/a-app", "--workspace", "DEV", "--runtime", "main"]
    code, out, err = cli("runtime", "diff", *target, "--exit-code")
    assert code == 0 and "in sync with v1" in out, err

    deployments.scale(tenant_a.owner, runtime, "web", 2)
    drift = api.get(f"/api/runtimes/{runtime.pk}/drift/").json()
    assert drift["sync"] == "out of sync"
    assert {"object": "service web", "field": "deployments.replicas", "desired": 1, "live": 2} in drift["items"]
    code, out, _ = cli("runtime", "diff", *target, "--exit-code")
    assert code == 1 and "out of sync" in out and "service web deployments.replicas: release 1, live 2" in out
    code, out, _ = cli("runtime", "diff", *target, "--format", "json")
    assert code == 0 and json.loads(out)["sync"] == "out of sync"
    browser = tenant_a.browser_client()
    page = browser.get(runtime.get_absolute_url()).content.decode()
    drift_url = runtime.get_absolute_url() + "drift/"
    assert f'hx-get="{drift_url}"' in page and 'data-sync=' not in page  # the page does not wait for the cluster
    page = browser.get(drift_url).content.decode()
    assert 'data-sync="out of sync"' in page and "deployments.replicas" in page and ">Sync</button>" in page

    code, out, err = cli("runtime", "sync", *target, "--wait", "--timeout", "60")
    assert code == 0, (out, err)
    wait_until(lambda: api.get(f"/api/runtimes/{runtime.pk}/drift/").json()["sync"] == "in sync", 30,
               "the runtime to be in sync again")


def test_a_runtime_on_a_cluster_that_cannot_tell_is_unknown(tenant_a, monkeypatch):
    from apps.deploy import drift as drift_mod
    from apps.deploy.models import Runtime

    runtime = Runtime(application=tenant_a.app, name="main", release=None)
    assert drift_mod.runtime_drift(runtime)["sync"] == "unknown"
