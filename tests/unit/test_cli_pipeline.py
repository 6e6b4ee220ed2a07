"""`dice pipeline validate|plan`: output formats and exit codes (0 ok, 1 invalid input, 2 usage)."""

from __future__ import annotations

import json

import pytest

from dice_cli.main import main
from tests.conftest import CONFORMANCE, DATA

CORPUS = CONFORMANCE / "pipeline"
OWN = DATA / "pipelineyml"

VALID = """\
version: "1.1"
stages:
  - stage:
      - git-checkout:
          alias: repo
  - stage:
      - custom-script:
          alias: build
          commands: ["cd ${{ dirs.repo }}"]
      - custom-script:
          alias: lint
          needs: [repo]
"""

INVALID = """\
version: "1.1"
stages:
  - stage:
      - custom-script:
          comands: [echo]
          timeout: soon
"""


@pytest.fixture
def write(tmp_path):
    def _write(text: str, name: str = "pipeline.yml") -> str:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    return _write


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_valid_text(capsys, write):
    path = write(VALID)
    code, out, err = run(capsys, "pipeline", "validate", path)
    assert code == 0 and out.strip() == f"{path}: valid" and err == ""


def test_validate_valid_json(capsys, write):
    code, out, _ = run(capsys, "pipeline", "validate", write(VALID), "--format", "json")
    assert code == 0 and json.loads(out) == {"valid": True, "errors": [], "warnings": []}


def test_validate_invalid_text_lists_every_error(capsys, write):
    path = write(INVALID)
    code, out, _ = run(capsys, "pipeline", "validate", path)
    assert code == 1
    lines = out.strip().splitlines()
    assert lines == [
        f"{path}:5: stages.0.stage.0.custom-script.comands: unknown key 'comands' (did you mean 'commands'?)",
        f"{path}:6: stages.0.stage.0.custom-script.timeout: expected a whole number of seconds, found a string ('soon')",
    ]


def test_validate_invalid_json(capsys, write):
    code, out, _ = run(capsys, "pipeline", "validate", write(INVALID), "--format", "json")
    doc = json.loads(out)
    assert code == 1 and doc["valid"] is False
    assert doc["errors"][0] == {
        "path": "stages.0.stage.0.custom-script.comands",
        "line": 5,
        "message": "unknown key 'comands' (did you mean 'commands'?)",
    }


@pytest.mark.parametrize("path", [
    OWN / "version_1_0.yml",
    pytest.param(CORPUS / "pkg_parser_pipelineyml_samples_pipeline_bigdata.yml", marks=pytest.mark.conformance),
], ids=["own", "corpus"])
def test_validate_legacy_version_file(capsys, path):
    code, out, _ = run(capsys, "pipeline", "validate", str(path), "--format", "json")
    doc = json.loads(out)
    assert code == 1 and len(doc["errors"]) == 1 and '"1.0"' in doc["errors"][0]["message"]


def test_yaml_syntax_error_is_invalid_input(capsys, write):
    code, out, _ = run(capsys, "pipeline", "validate", write("version: '1.1\nstages: [\n"))
    assert code == 1 and "YAML syntax error" in out


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_missing_file_is_one_clear_line(capsys, tmp_path, command):
    missing = tmp_path / "nope.yml"
    code, out, err = run(capsys, "pipeline", command, str(missing))
    assert code == 1 and out == ""
    assert err.strip() == f"dice: error: cannot read {missing}: no such file"


def test_directory_is_invalid_input(capsys, tmp_path):
    code, _, err = run(capsys, "pipeline", "validate", str(tmp_path))
    assert code == 1 and "is a directory" in err and len(err.strip().splitlines()) == 1


def test_plan_json(capsys, write):
    code, out, _ = run(capsys, "pipeline", "plan", write(VALID), "--format", "json")
    assert code == 0
    assert json.loads(out) == {
        "tasks": [
            {"alias": "repo", "type": "git-checkout", "needs": [], "stage": 0, "disabled": False},
            {"alias": "build", "type": "custom-script", "needs": ["repo"], "stage": 1, "disabled": False},
            {"alias": "lint", "type": "custom-script", "needs": ["repo"], "stage": 1, "disabled": False},
        ]
    }


def test_plan_text_table_by_stage(capsys, write):
    code, out, _ = run(capsys, "pipeline", "plan", write(VALID))
    assert code == 0
    lines = out.rstrip("\n").splitlines()
    assert lines[0].split() == ["STAGE", "ALIAS", "TYPE", "NEEDS"]
    assert lines[1].split() == ["0", "repo", "git-checkout", "-"]
    assert lines[2] == ""
    assert lines[3].split() == ["1", "build", "custom-script", "repo"]
    assert lines[4].split() == ["1", "lint", "custom-script", "repo"]
    assert lines[-1] == "3 tasks in 2 stages"


def test_plan_of_pipeline_without_stages(capsys, write):
    code, out, _ = run(capsys, "pipeline", "plan", write('version: "1.1"\ncron: "0 * * * *"\n'))
    assert code == 0 and "no tasks" in out
    code, out, _ = run(capsys, "pipeline", "plan", write('version: "1.1"\n'), "--format", "json")
    assert code == 0 and json.loads(out) == {"tasks": []}


def test_plan_invalid_file(capsys, write):
    path = write(INVALID)
    code, out, err = run(capsys, "pipeline", "plan", path)
    assert code == 1 and out == "" and f"{path}:5:" in err
    code, out, _ = run(capsys, "pipeline", "plan", path, "--format", "json")
    assert code == 1 and json.loads(out)["valid"] is False


def test_plan_example_file(capsys):
    code, out, _ = run(capsys, "pipeline", "plan", str(OWN / "ci.yml"), "--format", "json")
    tasks = json.loads(out)["tasks"]
    assert code == 0 and tasks[0] == {"alias": "repo", "type": "git-checkout", "needs": [], "stage": 0, "disabled": False}
    assert {"alias": "build", "type": "custom-script", "needs": ["repo", "unit"], "stage": 2, "disabled": False} in tasks
    assert tasks[-1] == {"alias": "notify", "type": "custom-script", "needs": ["build"], "stage": 4, "disabled": False}


@pytest.mark.conformance
def test_plan_real_file(capsys):
    path = CORPUS / "erda_pipelines_ci-deploy.yml"
    code, out, _ = run(capsys, "pipeline", "plan", str(path), "--format", "json")
    tasks = json.loads(out)["tasks"]
    assert code == 0 and tasks[0]["alias"] == "raw-erda"
    assert tasks[-1] == {"alias": "dice", "type": "dice", "needs": ["release-erda"], "stage": 7, "disabled": False}


@pytest.mark.parametrize(
    "argv",
    [
        ["pipeline"],
        ["pipeline", "validate"],
        ["pipeline", "plan"],
        ["pipeline", "validate", "x.yml", "--format", "xml"],
        ["pipeline", "frobnicate", "x.yml"],
    ],
)
def test_usage_errors_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err
