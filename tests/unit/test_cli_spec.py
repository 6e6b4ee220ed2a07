"""`dice spec validate`: output formats and exit codes (0 valid, 1 invalid input, 2 usage)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dice_cli.main import main
from tests.conftest import DATA

SPEC = str(DATA / "diceyml" / "platform.yml")  # a large spec with basic addons, valid but in PROD
BAD = 'version: "2.0"\nservices:\n  api:\n    resources:\n      cpu: 2\n      max_cpu: 1\n'


@pytest.fixture
def bad_file(tmp_path):
    path = tmp_path / "dice.yml"
    path.write_text(BAD)
    return str(path)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_valid_text(capsys):
    code, out, _ = run(capsys, "spec", "validate", SPEC)
    assert code == 0 and out.strip() == f"{SPEC}: valid"


def test_valid_json_with_workspace(capsys):
    code, out, _ = run(capsys, "spec", "validate", SPEC, "--workspace", "dev", "--format", "json")
    assert code == 0 and json.loads(out) == {"valid": True, "errors": [], "warnings": []}


def test_invalid_text(capsys, bad_file):
    code, out, _ = run(capsys, "spec", "validate", bad_file)
    assert code == 1
    assert out.strip() == f"{bad_file}:6: services.api.resources.max_cpu: max_cpu (1) must be >= cpu (2)"


def test_invalid_json(capsys, bad_file):
    code, out, _ = run(capsys, "spec", "validate", bad_file, "--format", "json")
    assert code == 1
    assert json.loads(out) == {
        "valid": False,
        "errors": [
            {"path": "services.api.resources.max_cpu", "line": 6, "message": "max_cpu (1) must be >= cpu (2)"}
        ],
        "warnings": [],
    }


def test_prod_workspace_refuses_basic_addon(capsys):
    legacy = str(DATA / "diceyml" / "legacy.yml")
    code, out, _ = run(capsys, "spec", "validate", legacy, "--workspace", "PROD", "--format", "json")
    payload = json.loads(out)
    assert code == 1 and payload["valid"] is False
    assert payload["errors"][0]["path"] == "addons.db.plan"


def test_yaml_error_is_invalid_input(capsys, tmp_path):
    path = tmp_path / "broken.yml"
    path.write_text("version: 2.0\nservices: [\n")
    code, out, _ = run(capsys, "spec", "validate", str(path), "--format", "json")
    assert code == 1
    assert json.loads(out)["errors"][0]["message"].startswith("YAML syntax error")


def test_missing_file_is_one_line_exit_1(capsys, tmp_path):
    missing = tmp_path / "nope.yml"
    code, out, err = run(capsys, "spec", "validate", str(missing))
    assert code == 1 and out == ""
    assert err.strip() == f"dice: error: cannot read {missing}: No such file or directory"
    assert len(err.strip().splitlines()) == 1


def test_directory_is_exit_1(capsys, tmp_path):
    code, _, err = run(capsys, "spec", "validate", str(tmp_path))
    assert code == 1 and "cannot read" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["spec", "validate", SPEC, "--workspace", "qa"],
        ["spec", "validate", SPEC, "--format", "xml"],
        ["spec", "validate"],
        ["spec"],
    ],
)
def test_usage_errors_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    if "qa" in argv:
        assert "unknown workspace 'qa'" in capsys.readouterr().err


def test_stdin(monkeypatch, capsys):
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(BAD.encode())))
    code, out, _ = run(capsys, "spec", "validate", "-")
    assert code == 1 and out.startswith("-:6: services.api.resources.max_cpu")


def test_installed_console_script(bad_file):
    dice = Path(sys.executable).parent / "dice"
    if not dice.exists():
        pytest.skip("the dice console script is not installed (pip install -e .)")
    ok = subprocess.run(
        [str(dice), "spec", "validate", SPEC, "--workspace", "STAGING"], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().endswith("valid")
    bad = subprocess.run(
        [str(dice), "spec", "validate", bad_file, "--format", "json"], capture_output=True, text=True
    )
    assert bad.returncode == 1 and json.loads(bad.stdout)["valid"] is False
    usage = subprocess.run(
        [str(dice), "spec", "validate", SPEC, "--workspace", "nope"], capture_output=True, text=True
    )
    assert usage.returncode == 2
