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


def test_create_uploads_the_spec_folder_like_deploy_does(cli, settings, tmp_path):
    from pathlib import Path

    settings.DICE_DEPLOY_FILES = str(tmp_path / "files")  # working directories are per release id: keep them apart

    from apps.deploy.bundles import release_workdir
    from apps.deploy.models import Release, ReleaseBundle

    folder = cli.dir / "guest"
    folder.mkdir()
    (folder / "dice.yml").write_text('version: "2.0"\nservices:\n  front:\n    cmd: python3 front.py\n')
    (folder / "front.py").write_text("print('hello')\n")
    (folder / ".git").mkdir()
    (folder / ".git" / "config").write_text("[core]\n")
    code, out, err = cli("release", "create", "acme/shop/web", "--spec", str(folder / "dice.yml"), "--format", "json")
    assert code == 0, err
    release = Release.objects.get(pk=json.loads(out)["id"])
    assert ReleaseBundle.objects.get(release=release).files == 2  # dice.yml and front.py, not .git
    workdir = Path(release_workdir(release))
    assert (workdir / "front.py").read_text() == "print('hello')\n" and not (workdir / ".git").exists()

    code, out, err = cli("release", "create", "acme/shop/web", "--spec", str(folder / "dice.yml"), "--no-files",
                         "--format", "json")
    assert code == 0, err
    assert not ReleaseBundle.objects.filter(release_id=json.loads(out)["id"]).exists()


def test_a_refused_archive_makes_no_release(transactional_db):
    import base64

    from rest_framework.test import APIClient

    from apps.deploy.models import Release

    user = make_user_with_app("erin")
    api = APIClient()
    api.force_authenticate(user)
    from apps.projects.models import Application

    app = Application.objects.get(slug="web")
    answer = api.post("/api/releases/", {"application": app.pk, "spec_text": SAMPLE.read_text(),
                                         "files_base64": base64.b64encode(b"not a tarball").decode()}, format="json")
    assert answer.status_code == 400 and "tar.gz" in str(answer.json())
    assert not Release.objects.exists()
