"""`dice release create|list|show` against a live console."""

from __future__ import annotations

import json

import pytest

from tests.conftest import DATA, make_user_with_app

SAMPLE = DATA / "diceyml" / "blog.yml"


@pytest.fixture
def cli(transactional_db, dice_cli):
    return dice_cli(make_user_with_app("erin"))


def test_create_list_show(cli):
    code, out, err = cli("release", "create", "acme/shop/web", "--spec", str(SAMPLE),
                         "--image", "posts=registry.example/posts:2", "--description", "first")
    assert code == 0, err
    assert "acme/shop/web v1" in out and "posts=registry.example/posts:2" in out

    code, out, err = cli("release", "create", "acme/shop/web", "--spec", str(SAMPLE), "--format", "json")
    assert code == 0, err
    second = json.loads(out)
    assert second["version"] == 2 and second["images"] == {"reader": "nginx:1.27"}  # posts: no image
    assert second["source_name"] == SAMPLE.name

    code, out, _ = cli("release", "list", "acme/shop/web", "--format", "json")
    assert code == 0
    assert [r["version"] for r in json.loads(out)] == [2, 1]
    code, out, _ = cli("release", "list", "acme/shop/web")
    assert "VERSION" in out and "v1" in out and "first" in out

    code, out, _ = cli("release", "show", str(second["id"]))
    assert code == 0
    assert "acme/shop/web v2" in out and "reader" in out and "posts" in out and "zookeeper" in out
    code, out, _ = cli("release", "show", str(second["id"]), "--format", "json")
    assert json.loads(out)["summary"]["services"][0]["name"] == "reader"


def test_a_bad_spec_prints_the_servers_errors_per_line(cli):
    bad = cli.dir / "dice.yml"
    bad.write_text('version: "2.0"\nservices:\n  api:\n    image: x\n    resources:\n      cpu: 1\n      max_cpu: 0.5\n'
                   "    depends_on: [nope]\n")
    code, out, err = cli("release", "create", "acme/shop/web", "--spec", str(bad))
    assert code == 1
    lines = err.strip().splitlines()
    assert f"{bad}:7: services.api.resources.max_cpu: max_cpu (0.5) must be >= cpu (1)" in lines
    assert any(line.startswith(f"{bad}:8: services.api.depends_on") for line in lines), lines
    code, out, _ = cli("release", "list", "acme/shop/web", "--format", "json")
    assert json.loads(out) == []


def test_usage_and_lookup_errors(cli):
    code, _, err = cli("release", "create", "acme/shop/web", "--spec", str(SAMPLE), "--image", "no-equals-sign")
    assert code == 2 and "SERVICE=IMAGE" in err
    code, _, err = cli("release", "create", "acme/shop/web", "--spec", str(SAMPLE), "--image", "a=1", "--image", "a=2")
    assert code == 2
    code, _, err = cli("release", "create", "acme/shop/web", "--spec", str(SAMPLE), "--image", "nope=x:1")
    assert code == 1 and "'nope' is not a service or job" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("release", "create", "acme/shop/nope", "--spec", str(SAMPLE))
    assert code == 1 and "no application acme/shop/nope" in err
    code, _, err = cli("release", "create", "acme/shop/web", "--spec", str(cli.dir / "missing.yml"))
    assert code == 1 and "cannot read" in err
    code, _, err = cli("release", "show", "999")
    assert code == 1 and "not found" in err
    code, _, err = cli("release", "show", "abc")
    assert code == 2
