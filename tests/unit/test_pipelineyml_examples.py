"""Our own pipeline.yml examples (tests/data/pipelineyml) through the parser and planner: every
feature docs/SPEC.md describes, so a fresh clone tests it all."""

from __future__ import annotations

import pytest

from pipelineyml import parse_pipeline_yml, plan, validate_pipeline_yml
from tests.conftest import DATA

OWN = DATA / "pipelineyml"


def load(name: str):
    return parse_pipeline_yml((OWN / name).read_bytes(), source=name)


@pytest.mark.parametrize("name", ["ci.yml", "legacy.yml", "cron_only.yml"])
def test_example_parses_and_plans_in_dependency_order(name):
    pipeline = load(name)
    tasks = plan(pipeline)
    done: set[str] = set()
    for task in tasks:
        assert set(task.needs) <= done, f"{task.alias} planned before one of {task.needs}"
        done.add(task.alias)
    assert sorted(done) == sorted(a.alias for a in pipeline.actions)


def test_ci_top_level():
    ci = load("ci.yml")
    assert (ci.version, ci.name, ci.cron) == ("1.1", "bookshop-ci", "0 4 * * 1-5")
    assert ci.on.push.branches == ("main", "release/*") and ci.on.push.tags == ("v*",)
    assert ci.on.merge.branches == ("main",)
    assert ci.cron_compensator.enable is True and ci.cron_compensator.latest_first is True
    assert dict(ci.envs) == {"GOFLAGS": "-mod=vendor", "CI_NAME": "bookshop"}
    assert [(p.name, p.required) for p in ci.params] == [
        ("repo", True), ("branch", False), ("shards", False), ("deploy", False)]
    assert [o.name for o in ci.outputs] == ["image"] and ci.storage.context == "/ctx"


def test_ci_actions_needs_and_references():
    ci = load("ci.yml")
    tasks = {t.alias: t for t in plan(ci)}
    assert tasks["repo"].type == "git-checkout" and ci.action("repo").version == "1.0"
    assert tasks["lint"].needs == ("repo",) and tasks["lint"].stage == 1
    # needs: [unit] plus the implicit dependency of ${{ dirs.repo }}; not the whole previous stage.
    assert tasks["build"].needs == ("repo", "unit")
    assert tasks["notify"].needs == ("build",) and tasks["notify"].stage == 4
    assert tasks["release"].needs == ("build", "docs")  # stage by stage without needs
    lint = ci.action("lint")
    assert (lint.resources.cpu, lint.resources.max_cpu, lint.resources.mem, lint.resources.disk) == (0.5, 1, 512, 1024)
    assert [r.text for r in lint.references] == ["${repo}", "${{ dirs.repo }}"]  # ${GOPATH} stays for the shell
    unit = ci.action("unit")
    assert (unit.retry.max, unit.retry.backoff) == (2, 5)
    assert [c.key for c in unit.caches] == ["pip-${{ params.branch }}"]
    assert ci.action("docs").disable is True
    assert ci.action("repo").timeout == 300 and ci.action("deploy").timeout == 900
    assert "==" in ci.action("release").condition and dict(ci.action("build").labels) == {"team": "web"}
    kinds = {(r.kind, r.target) for a in ci.actions for r in a.references}
    assert {("outputs", "build"), ("params", "deploy"), ("configs", "registry_token"),
            ("triggers", "git_push"), ("dirs", "repo")} <= kinds


def test_legacy_forms():
    legacy = load("legacy.yml")
    assert legacy.version == "1.1"  # written as a number
    assert legacy.on.push.branches == ("develop",)  # `on:`, which YAML 1.1 reads as true
    assert [(t.event, dict(t.filter)) for t in legacy.triggers] == [("git_push", {"branch": "develop"}), ("issue", {})]
    assert legacy.action("repo").resources.mem == 2048  # written as `memory`
    refs = [r.text for r in legacy.action("report").references]
    assert refs == ["${check:OUTPUT:result}", "${{ outputs.check.result.wrap_double_quotes }}"]
    assert plan(legacy)[-1].needs == ("check",)


def test_cron_only_pipeline_has_nothing_to_run():
    cron = load("cron_only.yml")
    assert cron.cron == "0 0 2 ? * *" and cron.stages == () and plan(cron) == []


def test_version_1_0_is_refused_naming_the_version():
    errors = validate_pipeline_yml((OWN / "version_1_0.yml").read_bytes(), source="version_1_0.yml")
    assert [(e.path, e.line) for e in errors] == [("version", 1)]
    assert '"1.0"' in errors[0].message and "legacy" in errors[0].message
