"""`dice cluster ...` against a live console."""

import json

import pytest

from tests.conftest import make_org
from tests.test_clusters import DEAD_SERVER, SECRET_TOKEN, kubeconfig


@pytest.fixture
def cli(transactional_db, dice_cli):
    from django.contrib.auth import get_user_model

    from apps.clusters.models import Cluster
    from apps.projects import services
    from apps.projects.choices import Role

    Cluster.local()  # a transactional test before this one may have flushed the migration's row
    owner = get_user_model().objects.create_user("olga")
    make_org(owner, "ops-org")
    dev = get_user_model().objects.create_user("dave")
    services.add_member(owner, services.Organization.objects.get(slug="ops-org"), username="dave",
                        role=Role.DEVELOPER)
    _, dev_key = services.create_token(dev, name="cli")
    run = dice_cli(owner)
    run.dev_key, run.tmp = dev_key, run.dir
    return run


def test_register_list_show_check_nodes(cli, monkeypatch):
    path = cli.tmp / "kubeconfig"
    path.write_text(kubeconfig())
    code, out, err = cli("cluster", "register", "prod-1", "--kubeconfig", str(path), "--context", "two",
                         "--wildcard-domain", "apps.example.com", "--format", "json")
    assert code == 0, err
    body = json.loads(out)
    assert body["context"] == "two" and body["credentials"]["set"] and SECRET_TOKEN not in out
    code, out, _ = cli("cluster", "list", "--format", "json")
    assert {c["name"] for c in json.loads(out)} == {"local", "prod-1"}
    code, out, _ = cli("cluster", "show", "prod-1")
    assert code == 0 and "apps.example.com" in out and "sha256:" in out and SECRET_TOKEN not in out
    code, out, _ = cli("cluster", "check", "prod-1")
    assert code == 1 and "error" in out and "cannot reach" in out
    code, out, err = cli("cluster", "check", "local", "--format", "json")
    assert code == 1 and "platform-wide" in err  # only staff manage the shared local cluster
    code, out, _ = cli("cluster", "nodes", "prod-1", "--format", "json")
    assert code == 0 and json.loads(out) == []

    ca = cli.tmp / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    code, out, err = cli("cluster", "register", "prod-2", "--server", DEAD_SERVER, "--ca", str(ca),
                         "--token", SECRET_TOKEN)
    assert code == 0, err
    assert "check:           error" in out


def test_errors_are_one_line(cli, monkeypatch):
    bad = cli.tmp / "bad"
    bad.write_text("clusters: []\n")
    code, _, err = cli("cluster", "register", "x", "--kubeconfig", str(bad))
    assert code == 1 and "no 'clusters' list" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("cluster", "register", "x", "--kubeconfig", str(cli.tmp / "missing"))
    assert code == 1 and "cannot read the kubeconfig" in err
    code, _, err = cli("cluster", "register", "x")
    assert code == 2
    code, _, err = cli("cluster", "show", "nope")
    assert code == 1 and "not found" in err
    monkeypatch.setenv("DICE_TOKEN", cli.dev_key)
    path = cli.tmp / "kubeconfig"
    path.write_text(kubeconfig())
    code, _, err = cli("cluster", "register", "x", "--kubeconfig", str(path))
    assert code == 1 and "permission denied" in err
