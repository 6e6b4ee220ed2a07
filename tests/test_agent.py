"""The step agent on its own: log lines, outputs, masking, timeout, caches, result file; each
test with both local agents (the Go runner, agent/bin/dice-step, and `python -m agent`)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from scheduler.local import steps as local_steps
from tests.conftest import ROOT

pytestmark = pytest.mark.usefixtures("step_runner")


def _spec(tmp_path, commands, **extra):
    step = tmp_path / "step"
    spec = {
        "task_run": 1, "job": "p1-a-1", "alias": "a", "type": "custom-script", "workdir": str(tmp_path / "dirs" / "a"),
        "dirs": {}, "commands": commands, "shell": "/bin/sh", "params": {}, "envs": {"GREETING": "hi"},
        "caches": [], "metafile": str(step / "metafile"), "result": str(step / "result.json"), "timeout": None,
        "mask": ["topsecret"], "notify": None, **extra,
    }
    step.mkdir(parents=True, exist_ok=True)
    path = step / "spec.json"
    path.write_text(json.dumps(spec))
    return path, spec


def agent_command(path) -> list[str]:
    """The agent the local cluster would run for the spec at `path` (DICE_STEP_RUNNER, set by the
    step_runner fixture); for the Go runner the spec is rewritten as the console writes it."""
    spec = json.loads(path.read_text())
    if local_steps.step_runner({}) == "go":
        path.write_text(json.dumps(local_steps.runner_spec(spec)))
        return [local_steps.RUNNER, "run", "--spec", str(path)]
    return [sys.executable, "-m", "agent", "run", "--spec", str(path)]


def _run(path):
    proc = subprocess.run(agent_command(path), cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/local/bin:/usr/bin:/bin", "DICE_AGENT_PYTHON": sys.executable,
                               "PYTHONPATH": str(ROOT)})
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()]


def test_lines_outputs_and_masking(tmp_path):
    path, spec = _spec(tmp_path, [
        'echo "$GREETING from $(pwd)"', "echo oops >&2", "echo 'k1=v1' >> $METAFILE",
        "echo 'action meta: k2=v2 with topsecret'", "echo the topsecret is safe",
    ])
    code, lines = _run(path)
    assert code == 0
    assert [line["n"] for line in lines] == list(range(1, len(lines) + 1))
    texts = {(line["stream"], line["text"]) for line in lines}
    assert ("stdout", f"hi from {spec['workdir']}") in texts and ("stderr", "oops") in texts
    assert ("stdout", "the ****** is safe") in texts
    assert not any("topsecret" in line["text"] for line in lines)
    result = json.loads((tmp_path / "step" / "result.json").read_text())
    assert result["exit_code"] == 0 and result["outputs"] == {"k1": "v1", "k2": "v2 with ******"}
    assert result["lines"] == len(lines) and lines[-1]["text"] == "exit code 0"


def test_failure_and_timeout(tmp_path):
    path, _ = _spec(tmp_path, ["echo before", "false", "echo never"])
    code, lines = _run(path)
    assert code == 1 and "never" not in [line["text"] for line in lines]
    assert json.loads((tmp_path / "step" / "result.json").read_text())["exit_code"] == 1
    path, _ = _spec(tmp_path, ["sleep 30"], timeout=1)
    started = time.monotonic()
    code, lines = _run(path)
    result = json.loads((tmp_path / "step" / "result.json").read_text())
    assert code == 1 and result["timed_out"] and result["exit_code"] == 124
    assert time.monotonic() - started < 15


def test_caches_are_stored_on_success_and_restored(tmp_path):
    archive = tmp_path / "caches" / "deps.tar.gz"
    cache = [{"key": "deps", "path": str(tmp_path / "dirs" / "a" / ".cache"), "archive": str(archive)}]
    path, _ = _spec(tmp_path, ["mkdir -p .cache", "echo kept > .cache/f"], caches=cache)
    assert _run(path)[0] == 0 and archive.exists()
    (tmp_path / "dirs" / "a" / ".cache" / "f").unlink()
    path, _ = _spec(tmp_path, ["cat .cache/f"], caches=cache)
    code, lines = _run(path)
    assert code == 0 and "kept" in [line["text"] for line in lines]
