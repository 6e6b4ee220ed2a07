"""Every `dice` command of the console's remaining flows, walked against a live console with
`--format json`: each prints one JSON document a script can read, and changes what it says."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT, make_org

pytestmark = pytest.mark.django_db(transaction=True)

SPEC = """\
version: "2.0"
services:
  web:
    image: registry.example/web:1
    cmd: python3 -m http.server 8080
    ports: [8080]
    resources: {cpu: 0.1, mem: 64}
"""
REVIEW = """\
version: "1.1"
name: reviewed
stages:
  - stage:
      - manual-review: {alias: approval}
"""


@pytest.fixture
def cli(dice_cli):
    from django.contrib.auth import get_user_model

    from apps.clusters.models import Cluster
    from apps.projects import services

    Cluster.local()
    user = get_user_model().objects.create_user("olga", is_staff=True, is_superuser=True)
    org = make_org(user, "acme")
    project = services.create_project(user, org, slug="shop")
    services.create_application(user, project, slug="web")
    services.create_application(user, project, slug="old")
    return dice_cli(user)


def _json(cli, *argv):
    code, out, err = cli(*argv, "--format", "json")
    assert code == 0, f"dice {' '.join(argv)}: {err}"
    return json.loads(out)


def test_every_console_command_speaks_json(cli, tmp_path):
    from apps.deploy.services import create_release
    from apps.pipelines.models import PipelineDefinition, ProjectConfig
    from apps.projects.models import ApiToken, Application, Organization, Workspace

    # tokens
    made = _json(cli, "token", "create", "ci")
    assert made["key"] and made["name"] == "ci"
    assert "ci" in {t["name"] for t in _json(cli, "token", "list")}
    assert _json(cli, "token", "revoke", "ci")["name"] == "ci"
    assert not ApiToken.objects.filter(name="ci").exists()

    # org / project / app edit and delete (a delete wants the name again)
    assert _json(cli, "org", "edit", "acme", "--name", "ACME Corp")["name"] == "ACME Corp"
    assert _json(cli, "project", "edit", "acme/shop", "--description", "the shop")["description"] == "the shop"
    assert _json(cli, "app", "edit", "acme/shop/web", "--repo", "https://git.example/web.git")["repo_url"].endswith("web.git")
    code, _, err = cli("app", "delete", "acme/shop/old", "--format", "json")
    assert code == 2 and "--confirm old" in err and Application.objects.filter(slug="old").exists()
    assert _json(cli, "app", "delete", "acme/shop/old", "--confirm", "old") == {"deleted": "acme/shop/old"}
    assert Organization.objects.get(slug="acme").name == "ACME Corp"

    # workspaces: quotas and binding
    rows = _json(cli, "workspace", "list", "acme/shop")
    assert {w["kind"] for w in rows} == {"DEV", "TEST", "STAGING", "PROD"}
    saved = _json(cli, "workspace", "set", "acme/shop", "-w", "test", "--cpu-quota", "2", "--mem-quota", "2048", "--cluster", "local")
    assert float(saved["cpu_quota"]) == 2 and saved["mem_quota"] == 2048
    assert Workspace.objects.get(project__slug="shop", kind="TEST").mem_quota == 2048

    # configs and secrets: a secret's value never comes back
    _json(cli, "config", "set", "acme/shop", "REGION=eu")
    secret = _json(cli, "config", "set", "acme/shop", "DB_PASSWORD=hunter2", "--secret")
    assert secret["secret"] and "hunter2" not in json.dumps(secret)
    listed = _json(cli, "config", "list", "acme/shop")
    assert {c["key"] for c in listed} == {"REGION", "DB_PASSWORD"} and "hunter2" not in json.dumps(listed)
    _json(cli, "config", "delete", "acme/shop", "REGION")
    assert list(ProjectConfig.objects.values_list("key", flat=True)) == ["DB_PASSWORD"]

    # branch rules
    rule = _json(cli, "branch-rule", "add", "acme/shop", "release/*", "-w", "staging", "--priority", "5")
    assert rule["workspace"] == "STAGING"
    assert [r["pattern"] for r in _json(cli, "branch-rule", "list", "acme/shop")] == ["release/*"]
    _json(cli, "branch-rule", "delete", str(rule["id"]))
    assert _json(cli, "branch-rule", "list", "acme/shop") == []

    # pipeline definitions: examples/ops/inspect.yml saved the way its comment says
    saved = _json(cli, "pipeline", "save", "acme/shop/web", str(ROOT / "examples" / "ops" / "inspect.yml"))
    assert saved["name"] == "ops-inspect"
    review = tmp_path / "review.yml"
    review.write_text(REVIEW)
    _json(cli, "pipeline", "save", "acme/shop/web", str(review))
    assert {d["name"] for d in _json(cli, "pipeline", "list", "acme/shop/web")} == {"ops-inspect", "reviewed"}
    assert "cluster-inspect" in _json(cli, "pipeline", "show", "acme/shop/web", "ops-inspect")["source"]
    bad = tmp_path / "bad.yml"
    bad.write_text("version: '1.1'\nstages: [[[\n")
    code, _, err = cli("pipeline", "save", "acme/shop/web", str(bad), "--format", "json")
    assert code == 1 and err
    _json(cli, "pipeline", "delete", "acme/shop/web", "reviewed")
    assert list(PipelineDefinition.objects.values_list("name", flat=True)) == ["ops-inspect"]

    # runs: list, status, cancel, rerun, approve (the run waits at its review; no worker needed)
    code, out, err = cli("pipeline", "run", "acme/shop/web", str(review), "--format", "json")
    assert code == 0, err
    run_id = json.loads(out)["id"]
    assert run_id in {r["id"] for r in _json(cli, "run", "list", "acme/shop/web")}
    assert _json(cli, "run", "status", str(run_id))["id"] == run_id
    assert _json(cli, "run", "cancel", str(run_id))["status"] == "cancelled"
    rerun = _json(cli, "run", "rerun", str(run_id))
    assert rerun["id"] != run_id
    code, _, err = cli("run", "approve", str(rerun["id"]), "--format", "json")
    assert code in (0, 1)  # approving before the review waits is refused with a message, not a crash
    assert code == 0 or err.startswith("dice: error:")

    # releases and deployments
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(username="olga")
    app = Application.objects.get(slug="web")
    create_release(user, app, spec_text=SPEC)
    create_release(user, app, spec_text=SPEC.replace("web:1", "web:2"))
    diff = _json(cli, "release", "diff", "acme/shop/web", "v2")
    assert "web:2" in json.dumps(diff)
    assert _json(cli, "deployment", "list", "acme/shop/web") == []

    # CMDB, audit, the resource report (by org/slug and bare slug), inspection, cluster settings
    assert isinstance(_json(cli, "cmdb", "list"), list)
    events = _json(cli, "audit", "--org", "acme")
    assert any(e["action"] == "delete" for e in events)
    report = _json(cli, "report", "resources", "--project", "acme/shop")
    assert report == _json(cli, "report", "resources", "--project", "shop")
    cluster = _json(cli, "cluster", "update", "local", "--domain", "apps.example.test")
    assert cluster["wildcard_domain"] == "apps.example.test"
    assert isinstance(_json(cli, "cluster", "labels", "local"), list)


def test_api_root_lists_every_endpoint_and_project_takes_org_slash_slug(cli):
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(get_user_model().objects.get(username="olga"))
    root = client.get("/api/").json()
    for name in ("releases", "runtimes", "deployments", "pipelines", "pipeline-runs", "task-runs",
                 "project-configs", "branch-rules", "clusters", "cmdb/items", "orgs", "projects",
                 "applications", "workspaces", "members", "tokens", "audit-events", "users",
                 "resource-report", "me", "spec-validate", "schema"):
        assert name in root, name
    assert root["runtime-scale"].endswith("/api/runtimes/{pk}/scale/")
    assert len(root) > 40
    for url in ("/api/applications/", "/api/workspaces/", "/api/releases/", "/api/project-configs/"):
        full = client.get(url, {"project": "acme/shop"}).json()["count"]
        bare = client.get(url, {"project": "shop"}).json()["count"]
        none = client.get(url, {"project": "acme/nope"}).json()["count"]
        assert full == bare and none == 0, url
    assert client.get("/api/applications/", {"project": "acme/shop"}).json()["count"] == 2
