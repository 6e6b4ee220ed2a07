# ruff: noqa: F811
"""`dice pipeline run` against a live console with an embedded worker on local."""

from __future__ import annotations

import json

import pytest

from tests.conftest import make_user_with_app
from tests.pipelines_helpers import engine  # noqa: F401


@pytest.fixture
def cli(engine, dice_cli):
    return dice_cli(make_user_with_app("pia"))


def test_run_wait_json_prints_tasks_and_outputs(cli, tmp_path):
    good = tmp_path / "ci.yml"
    good.write_text("""
version: "1.1"
params: [{name: who, default: world}]
stages:
  - stage:
      - custom-script:
          alias: hello
          commands: ['echo "greeting=hello ${{ params.who }}" >> $METAFILE']
  - stage:
      - echo: {params: {msg: "${{ outputs.hello.greeting }}"}}
""")
    code, out, err = cli("pipeline", "run", "acme/shop/web", str(good), "--param", "who=pia", "--wait",
                         "--format", "json")
    assert code == 0, err
    body = json.loads(out)
    assert body["status"] == "success" and isinstance(body["id"], int)
    assert body["tasks"] == [
        {"alias": "hello", "status": "success", "outputs": {"greeting": "hello pia"}},
        {"alias": "echo", "status": "success", "outputs": {}},
    ]

    bad = tmp_path / "bad.yml"
    bad.write_text('version: "1.1"\nstages:\n  - stage:\n      - custom-script: {commands: ["exit 4"]}\n')
    code, out, _ = cli("pipeline", "run", "acme/shop/web", str(bad), "--wait", "--format", "json")
    assert code == 1
    assert json.loads(out)["tasks"][0]["status"] == "failed"

    code, _, err = cli("pipeline", "run", "acme/shop/web", str(bad), "--param", "nokey")
    assert code == 2 and "KEY=VALUE" in err
