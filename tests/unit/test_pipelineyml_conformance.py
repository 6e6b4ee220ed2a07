"""Every real pipeline.yml of the Erda corpus parses and plans (the legacy and broken ones are refused).
The conformance tier: the corpus is read in place from ../shared (tests/conftest.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipelineyml import parse_pipeline_yml, plan, validate_pipeline_yml
from tests.conftest import CONFORMANCE

pytestmark = pytest.mark.conformance

CORPUS = CONFORMANCE / "pipeline"
FILES = sorted(p for p in CORPUS.glob("*") if p.suffix in (".yml", ".yaml"))
LEGACY = re.compile(r"""^version:\s*['"]?1(\.0)?['"]?\s*$""", re.MULTILINE)
# Files the corpus documents as refused, with a word the error must name.
REFUSED = {"pkg_parser_pipelineyml_samples_pipeline_cicd.yml": "git-checkout"}


def test_corpus_is_there():
    assert len(FILES) >= 10, f"conformance corpus missing under {CORPUS}"


def _is_legacy(path: Path) -> bool:
    return bool(LEGACY.search(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize(
    "path", [p for p in FILES if not _is_legacy(p) and p.name not in REFUSED], ids=lambda p: p.name
)
def test_real_file_parses_and_plans(path: Path):
    pipeline = parse_pipeline_yml(path.read_bytes(), source=path.name)
    tasks = plan(pipeline)
    assert [t.alias for t in tasks] == [t.alias for t in plan(parse_pipeline_yml(path.read_bytes()))]
    assert sorted(t.alias for t in tasks) == sorted(a.alias for a in pipeline.actions)
    done: set[str] = set()
    for task in tasks:
        assert set(task.needs) <= done, f"{task.alias} planned before one of {task.needs}"
        assert list(task.needs) == sorted(task.needs)
        done.add(task.alias)


@pytest.mark.parametrize("path", [p for p in FILES if _is_legacy(p)], ids=lambda p: p.name)
def test_legacy_version_is_refused_naming_the_version(path: Path):
    errors = validate_pipeline_yml(path.read_bytes(), source=path.name)
    assert len(errors) == 1
    assert errors[0].path == "version"
    assert errors[0].line == 1
    assert '"1.0"' in errors[0].message and "legacy" in errors[0].message


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_documented_broken_file_is_refused(name: str):
    path = CORPUS / name
    errors = validate_pipeline_yml(path.read_bytes(), source=name)
    assert errors, f"{name} should be refused"
    assert any(REFUSED[name] in e.message for e in errors)
    assert all(e.line is not None for e in errors)


def test_corpus_specifics():
    on = parse_pipeline_yml((CORPUS / "pkg_parser_pipelineyml_samples_on.yml").read_bytes())
    assert on.on is not None and on.on.push is not None and on.on.push.branches == ("develop",)
    repo = on.action("repo")
    assert repo.resources.mem == 2048  # written as `memory`
    lint = on.action("golangci-lint")
    assert [r.text for r in lint.references] == ["${repo}"]  # ${GOPATH}, ${OSS_ENDPOINT} stay shell variables

    cron = parse_pipeline_yml((CORPUS / "pkg_parser_pipelineyml_samples_pipeline_cron.yml").read_bytes())
    assert cron.version == "1.1" and cron.stages == () and plan(cron) == []
    assert cron.cron_compensator is not None and cron.cron_compensator.enable is True

    trig = parse_pipeline_yml((CORPUS / "pkg_parser_pipelineyml_samples_trigger.yml").read_bytes())
    assert [t.event for t in trig.triggers] == ["issue", "git_on", "git_push"]
    assert {(r.kind, r.target, r.key) for r in trig.actions[0].references} == {
        ("triggers", "git_push", "branch"),
        ("triggers", "issue", "type"),
    }
