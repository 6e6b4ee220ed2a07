# ruff: noqa: F811
"""Erda pipeline features at run time (issue 26), run for real on the local cluster: the release
action publishes `releaseID`, random values and reference suffixes reach the step, a snippet
action fails with a message saying it is not run, a disabled action is skipped."""

from __future__ import annotations

import re

import pytest

from apps.logs.services import read_task_lines
from tests.pipelines_helpers import engine  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

RELEASE = r"""
version: "1.1"
stages:
  - stage:
      - custom-script:
          alias: make
          commands:
            - 'printf ''version: 2\nservices:\n  web:\n    image: nginx\n    cmd: sleep 1\n'' > dice.yml'
            - 'echo "action meta: msg=it''s \"quoted\" \$HOME"'
            - 'echo "action meta: quote=say \"hi\""'
  - stage:
      - release:
          params:
            dice_yml: ${{ dirs.make }}/dice.yml
  - stage:
      - custom-script:
          alias: show
          commands:
            - echo "erda=${{ outputs.release.releaseID }} legacy=${release:OUTPUT:releaseID} ours=${{ outputs.release.release_id }}"
            - echo "random=${{ random.integer_6 }} day=${{ random.date }}"
            - echo single=${{ outputs.make.msg.wrap_single_quotes }}
            - echo double=${{ outputs.make.msg.wrap_double_quotes }}
            - echo escaped=${{ outputs.make.quote.escape }}
      - custom-script:
          alias: sonar
          disable: true
          commands: ["exit 1"]
"""


def test_release_publishes_releaseID_and_references_resolve_in_the_step(engine, tenant_a):
    run = engine.wait(engine.run(tenant_a, RELEASE), timeout=60)
    assert run.status == "success", run.reason
    tasks = engine.tasks(run)
    outputs = tasks["release"].outputs
    assert outputs["releaseID"] == outputs["release_id"] and outputs["release_id"].isdigit()
    lines = [line.text for line in read_task_lines(tasks["show"].pk)]
    rid = outputs["release_id"]
    assert f"erda={rid} legacy={rid} ours={rid}" in lines
    random_line = next(x for x in lines if x.startswith("random="))
    assert re.fullmatch(r"random=[1-9]\d{5} day=\d{4}-\d{2}-\d{2}", random_line)
    assert 'single=it\'s "quoted" $HOME' in lines  # the shell got the value as it was
    assert 'double=it\'s "quoted" $HOME' in lines
    assert 'escaped=say "hi"' in lines  # Go-quoted ("say \"hi\""), which the shell reads back
    assert tasks["sonar"].status == "skipped"


def test_a_snippet_action_fails_saying_it_is_not_run(engine, tenant_a):
    src = """
version: "1.1"
stages:
  - stage:
      - snippet:
          alias: build
          snippet_config: {source: local, name: pipelines/build.yml}
  - stage:
      - echo: {params: {msg: after}}
"""
    run = engine.wait(engine.run(tenant_a, src))
    tasks = engine.tasks(run)
    assert run.status == "failed"
    assert tasks["build"].status == "failed" and tasks["build"].attempt == 1
    assert "snippet actions" in tasks["build"].reason and "does not run them yet" in tasks["build"].reason
    assert "'pipelines/build.yml' from local" in tasks["build"].reason
    assert tasks["echo"].status != "success"
