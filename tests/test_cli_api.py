"""The `dice` command against a live console: login, create and list, and one-line errors."""

import json

import pytest

from tests.conftest import make_org


@pytest.fixture
def cli(transactional_db, dice_cli, settings):
    from django.contrib.auth import get_user_model

    settings.DICE_ORG_CREATION = "anyone"  # self-service: `dice org create` by a plain user
    return dice_cli(get_user_model().objects.create_user("erin"), logged_in=False)


def test_login_then_create_and_list(cli):
    code, out, _ = cli("login", "--server", cli.server, "--token", cli.token)
    assert code == 0 and "as erin" in out
    assert cli("org", "create", "acme")[0] == 0
    assert cli("project", "create", "acme/shop")[0] == 0
    code, out, err = cli("app", "create", "acme/shop/web", "--repo", "https://git.example/web.git", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["full_name"] == "acme/shop/web"
    code, out, _ = cli("app", "list", "acme/shop", "--format", "json")
    assert [a["repo_url"] for a in json.loads(out)] == ["https://git.example/web.git"]
    code, out, _ = cli("project", "list")
    assert "acme/shop" in out
    code, out, _ = cli("org", "list", "--format", "json")
    assert [o["slug"] for o in json.loads(out)] == ["acme"]


def test_environment_overrides_stored_login(cli, monkeypatch):
    cli("login", "--server", cli.server, "--token", cli.token)
    monkeypatch.setenv("DICE_TOKEN", "dice_wrong")
    code, _, err = cli("org", "list")
    assert code == 1
    assert err.startswith("dice: error:") and "refused the token" in err
    assert len(err.strip().splitlines()) == 1


def test_bad_input_gives_one_line_errors(cli, monkeypatch):
    monkeypatch.setenv("DICE_SERVER", cli.server)
    monkeypatch.setenv("DICE_TOKEN", cli.token)
    cases = [
        (("project", "create", "nope/shop"), "not found"),
        (("app", "create", "nope/shop/web"), "not found"),
    ]
    assert cli("org", "create", "acme")[0] == 0
    cases.append((("org", "create", "acme"), "already exists"))
    assert cli("project", "create", "acme/shop")[0] == 0
    cases.append((("project", "create", "acme/shop"), "already exists"))
    cases.append((("app", "create", "acme/nope/web"), "no project acme/nope"))
    for argv, message in cases:
        code, out, err = cli(*argv)
        assert code == 1, argv
        assert message in err, (argv, err)
        assert len(err.strip().splitlines()) == 1, err


def test_missing_permission_is_a_clear_error(cli, monkeypatch):
    from django.contrib.auth import get_user_model

    from apps.projects import services

    owner = get_user_model().objects.create_user("owner")
    org = make_org(owner, "other")
    services.add_member(owner, org, username="erin", role="guest")
    monkeypatch.setenv("DICE_SERVER", cli.server)
    monkeypatch.setenv("DICE_TOKEN", cli.token)
    code, _, err = cli("project", "create", "other/shop")
    assert code == 1
    assert "permission denied" in err


def test_malformed_name_is_a_usage_error(cli, monkeypatch):
    monkeypatch.setenv("DICE_SERVER", cli.server)
    monkeypatch.setenv("DICE_TOKEN", cli.token)
    code, _, err = cli("app", "create", "only/two")
    assert code == 2 and "ORG/PROJECT/APP" in err


def test_not_logged_in(cli):
    code, _, err = cli("org", "list")
    assert code == 1 and "not logged in" in err
