"""Environment variables per application and workspace: the model and its rules (POSIX names,
the platform's reserved names, secret values write-only and encrypted), the API (scoped, audited,
rights per workspace), what a rollout hands the executor, and `dice env list|set|unset`."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Tenant, make_org

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shop(db):
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from apps.clusters.models import Cluster
    from apps.projects import services

    Cluster.local()
    owner = get_user_model().objects.create_user("vera")
    org = make_org(owner, "acme")
    project = services.create_project(owner, org, slug="shop")
    app = services.create_application(owner, project, slug="web")
    api = APIClient()
    api.force_authenticate(owner)
    return {"owner": owner, "org": org, "project": project, "app": app, "api": api}


def _set(api, app, workspace, name, value, secret=False):
    return api.post("/api/variables/", {"application": app.pk, "workspace": workspace, "name": name, "value": value,
                                        "secret": secret}, format="json")


def test_set_list_replace_and_delete_through_the_api(shop):
    from apps.deploy.models import EnvironmentVariable
    from apps.projects.models import AuditEvent

    api, app = shop["api"], shop["app"]
    r = _set(api, app, "dev", "GREETING", "hello world")
    assert r.status_code == 201, r.content
    plain = r.json()
    assert plain["workspace"] == "DEV" and plain["value"] == "hello world" and plain["secret"] is False
    r = _set(api, app, "DEV", "API_TOKEN", "s3cr3t-value", secret=True)
    assert r.status_code == 201 and r.json()["value"] == "******"
    _set(api, app, "PROD", "GREETING", "hello prod")

    # Stored encrypted; never read back; the audit log knows that it changed, not the value.
    stored = EnvironmentVariable.objects.get(name="API_TOKEN")
    assert "s3cr3t" not in stored.value and stored.plain_value() == "s3cr3t-value"
    rows = api.get("/api/variables/", {"application": "acme/shop/web", "workspace": "dev"}).json()["results"]
    assert {(v["name"], v["value"]) for v in rows} == {("GREETING", "hello world"), ("API_TOKEN", "******")}
    assert api.get(f"/api/variables/{stored.pk}/").json()["value"] == "******"
    events = AuditEvent.objects.filter(object_type="environmentvariable")
    assert events.count() == 3 and all(e.application_id == app.pk for e in events)
    assert "s3cr3t" not in json.dumps([e.after for e in events])

    # Setting a name again replaces it (POST or PATCH); the name cannot change.
    assert _set(api, app, "DEV", "GREETING", "hi").status_code == 201
    assert EnvironmentVariable.objects.get(name="GREETING", workspace__kind="DEV").value == "hi"
    r = api.patch(f"/api/variables/{plain['id']}/", {"value": "hey"}, format="json")
    assert r.status_code == 200 and r.json()["value"] == "hey"
    r = api.patch(f"/api/variables/{plain['id']}/", {"name": "OTHER"}, format="json")
    assert r.status_code == 400 and "name" in r.json()
    r = api.patch(f"/api/variables/{plain['id']}/", {"secret": True}, format="json")
    assert r.status_code == 400 and "value" in r.json()

    assert api.delete(f"/api/variables/{stored.pk}/").status_code == 204
    assert not EnvironmentVariable.objects.filter(name="API_TOKEN").exists()
    assert AuditEvent.objects.filter(object_type="environmentvariable", action="delete").count() == 1


@pytest.mark.parametrize("name, why", [
    ("", "name"), ("1ABC", "not an environment variable name"), ("MY-VAR", "not an environment variable name"),
    ("A B", "not an environment variable name"), ("DICE_WORKSPACE", "reserved"), ("dice_x", "reserved"),
    ("SELF_URL", "reserved"), ("PORT", "reserved"), ("PORT1", "reserved"), ("X" * 201, "200"),
])
def test_bad_names_are_refused_with_the_reason_and_change_nothing(shop, name, why):
    from apps.deploy.models import EnvironmentVariable

    r = _set(shop["api"], shop["app"], "DEV", name, "v")
    assert r.status_code == 400, r.content
    assert why in json.dumps(r.json())
    assert not EnvironmentVariable.objects.exists()


def test_bad_values_and_workspaces_are_refused(shop):
    from apps.deploy.models import EnvironmentVariable

    api, app = shop["api"], shop["app"]
    r = _set(api, app, "DEV", "X", "a\x00b")
    assert r.status_code == 400 and "null characters" in json.dumps(r.json()).lower()
    # The page and the CLI reach the same rule in the service, which says why.
    from django.core.exceptions import ValidationError

    from apps.deploy import variables

    with pytest.raises(ValidationError, match="NUL byte"):
        variables.set_variable(shop["owner"], app, "DEV", name="X", value="a\x00b")
    r = _set(api, app, "QA", "X", "v")
    assert r.status_code == 400 and "workspace" in r.json()
    assert not EnvironmentVariable.objects.exists()
    # PORTS and DICER are ordinary names (only the exact reserved ones and the prefixes are refused)
    assert _set(api, app, "DEV", "PORTS", "1").status_code == 201
    assert _set(api, app, "DEV", "DICER", "1").status_code == 201


def test_scoped_to_the_organization_and_rights_per_workspace(shop):
    from apps.projects import services
    from apps.projects.choices import Role

    api, app = shop["api"], shop["app"]
    secret_id = _set(api, app, "PROD", "DB_URL", "postgres://x", secret=True).json()["id"]
    other = Tenant("other")
    outsider = other.api()
    assert outsider.get("/api/variables/").json()["results"] == []
    assert outsider.get(f"/api/variables/{secret_id}/").status_code == 404
    assert outsider.delete(f"/api/variables/{secret_id}/").status_code == 404
    r = _set(outsider, app, "DEV", "X", "v")
    assert r.status_code == 400 and "application" in r.json()

    # A developer may set DEV and TEST but not PROD (that takes the right to deploy there), and reads
    # PROD's secret only as ******.
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    dev = get_user_model().objects.create_user("dan")
    services.add_member(shop["owner"], shop["org"], username="dan", role=Role.DEVELOPER)
    client = APIClient()
    client.force_authenticate(dev)
    assert _set(client, app, "DEV", "X", "v").status_code == 201
    r = _set(client, app, "PROD", "X", "v")
    assert r.status_code == 403 and "PROD" in r.json()["detail"]
    assert client.get(f"/api/variables/{secret_id}/").json()["value"] == "******"
    assert client.delete(f"/api/variables/{secret_id}/").status_code == 403


def test_a_rollout_hands_the_workspaces_variables_to_the_executor(shop):
    from apps.deploy import variables
    from apps.deploy.models import Deployment, Runtime
    from apps.deploy.rollout import build_group
    from apps.deploy.services import create_release
    from diceyml import parse_dice_yml

    owner, app = shop["owner"], shop["app"]
    spec = 'version: "2.0"\nservices:\n  web:\n    image: x\n    cmd: sleep 60\n    envs: {GREETING: from-file}\n'
    release = create_release(owner, app, spec_text=spec)
    variables.set_variable(owner, app, "DEV", name="GREETING", value="from-console")
    variables.set_variable(owner, app, "DEV", name="TOKEN", value="t0ps3cret", secret=True)
    variables.set_variable(owner, app, "TEST", name="ONLY_TEST", value="1")
    # A deployment row as deploy() makes it, without dispatching a rollout (none is wanted here).
    workspace = app.project.workspaces.get(kind="DEV")
    runtime = Runtime.objects.create(application=app, workspace=workspace, name="main", cluster=workspace.cluster)
    deployment = Deployment.objects.create(runtime=runtime, release=release)
    group = build_group(deployment, parse_dice_yml(spec, workspace="DEV"))
    assert group.variables == {"GREETING": "from-console"}
    assert group.secret_variables == {"TOKEN": "t0ps3cret"}
    assert group.variables_digest and "t0ps3cret" not in repr(group)
    # The digest follows every value, secret ones too, without being a plain hash of them.
    first = group.variables_digest
    variables.set_variable(owner, app, "DEV", name="TOKEN", value="another", secret=True)
    assert variables.for_runtime(runtime)[2] != first


def test_dice_env_list_set_unset_speak_json(dice_cli, monkeypatch):
    from django.contrib.auth import get_user_model

    from apps.clusters.models import Cluster
    from apps.deploy.models import EnvironmentVariable
    from apps.projects import services

    Cluster.local()
    user = get_user_model().objects.create_user("olga")
    org = make_org(user, "acme")
    services.create_application(user, services.create_project(user, org, slug="shop"), slug="web")
    cli = dice_cli(user)

    def j(*argv):
        code, out, err = cli(*argv, "--format", "json")
        assert code == 0, f"dice {' '.join(argv)}: {err}"
        return json.loads(out)

    saved = j("env", "set", "acme/shop/web", "dev", "GREETING=hello", "EMPTY=")
    assert [(v["name"], v["value"], v["workspace"]) for v in saved] == [("GREETING", "hello", "DEV"), ("EMPTY", "", "DEV")]
    saved = j("env", "set", "acme/shop/web", "DEV", "API_KEY=k3y-value", "--secret")
    assert saved[0]["value"] == "******" and saved[0]["secret"] is True
    listed = j("env", "list", "acme/shop/web", "DEV")
    assert {v["name"]: v["value"] for v in listed} == {"API_KEY": "******", "EMPTY": "", "GREETING": "hello"}
    assert j("env", "list", "acme/shop/web", "PROD") == []
    # --stdin keeps a secret out of the shell's history and the process list.
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("from-stdin-s3cret\n"))
    assert j("env", "set", "acme/shop/web", "DEV", "DB_PASSWORD", "--stdin", "--secret")[0]["value"] == "******"
    assert EnvironmentVariable.objects.get(name="DB_PASSWORD").plain_value() == "from-stdin-s3cret"
    j("env", "unset", "acme/shop/web", "DEV", "DB_PASSWORD")
    j("env", "set", "acme/shop/web", "DEV", "GREETING=again")
    assert EnvironmentVariable.objects.get(name="GREETING").value == "again"
    assert EnvironmentVariable.objects.get(name="API_KEY").plain_value() == "k3y-value"

    # Text output names what changed; bad input is refused with the reason and changes nothing.
    code, out, err = cli("env", "set", "acme/shop/web", "DEV", "DICE_X=1")
    assert code != 0 and "reserved" in err
    code, out, err = cli("env", "set", "acme/shop/web", "QA", "X=1")
    assert code == 2 and "WORKSPACE" in err
    code, out, err = cli("env", "set", "acme/shop/web", "DEV", "NOEQUALS")
    assert code == 2 and "NAME=VALUE" in err
    code, out, err = cli("env", "unset", "acme/shop/web", "DEV", "GREETING", "MISSING")
    assert code != 0 and "MISSING" in err
    assert EnvironmentVariable.objects.filter(name="GREETING").exists()

    assert j("env", "unset", "acme/shop/web", "DEV", "GREETING", "EMPTY") == {
        "unset": ["GREETING", "EMPTY"], "application": "acme/shop/web", "workspace": "DEV"}
    assert [v["name"] for v in j("env", "list", "acme/shop/web", "DEV")] == ["API_KEY"]


def test_odd_filter_values_answer_an_empty_list_or_a_400_never_a_500(shop):
    """'³' passes str.isdigit() but not int(): ids in filters are ASCII digits only."""
    api, app = shop["api"], shop["app"]
    _set(api, app, "DEV", "X", "1")
    for query in ({"application": "\u00b3"}, {"project": "\u00b3"}, {"application": "9" * 30},
                  {"application": "acme/shop"}, {"workspace": "\u00b3"}, {"application": "acme/shop/web"}):
        r = api.get("/api/variables/", query)
        assert r.status_code in (200, 400), (query, r.status_code)
    assert api.get("/api/variables/", {"application": "acme/shop/web"}).json()["count"] == 1
    assert api.get("/api/variables/", {"application": str(app.pk)}).json()["count"] == 1
    assert api.get("/api/variables/", {"application": "\u00b3"}).json()["count"] == 0
