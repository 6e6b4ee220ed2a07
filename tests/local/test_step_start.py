"""What a local step's start costs (issue 25, item 4): the agent starts from bytecode its tenant
can read, without runpy, and nothing in the step's working directory can stand in for it. The
tests that start steps run with each agent (the Go runner and the Python agent: step_runner)."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import time
from pathlib import Path

import pytest

import agent
from scheduler.base import ExecutorError, JobState, StepJob
from scheduler.local import steps as local_steps
from tests.local.conftest import wait_for


def _step(root: Path, name: str, commands: list[str], tenant: str = "acme") -> StepJob:
    folder = root / "runs" / "1" / "steps" / name
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"task_run": 1, "job": name, "alias": name, "type": "custom-script",
            "workdir": str(root / "runs" / "1" / "work" / name), "dirs": {}, "commands": commands, "envs": {},
            "caches": [], "metafile": str(folder / "metafile"), "result": str(folder / "result.json"),
            "timeout": None, "mask": [], "notify": None}
    return StepJob(name=name, namespace="pipelines-1", spec=spec, folder=str(folder), tenant=tenant)


def _result(executor, job: StepJob) -> dict:
    path = Path(job.spec["result"])
    wait_for(lambda: executor.job_status(job.name, job.namespace).state.finished, 60, f"{job.name} to end")
    return json.loads(path.read_text())


def _modules() -> list[str]:
    here = Path(agent.ROOT) / "agent"
    return sorted(str(p) for p in here.glob("*.py"))


def test_the_console_writes_the_agents_bytecode_for_its_tenants(tmp_path):
    """Without it every step's agent compiled runner, checkout, masking and jsonlite from source
    (the sandbox mounts the package read-only), whatever PYTHONDONTWRITEBYTECODE says."""
    for source in _modules():  # older than its source: stale, as after an upgrade
        cached = importlib.util.cache_from_source(source)
        if os.path.exists(cached):
            os.utime(cached, (0, 0))
    local_steps.agent_bytecode.cache_clear()
    local_steps.step_job(_step(tmp_path, "a", ["true"]))
    for source in _modules():
        cached = Path(importlib.util.cache_from_source(source))
        assert cached.stat().st_mtime >= Path(source).stat().st_mtime, cached
        assert cached.stat().st_mode & stat.S_IROTH and cached.parent.stat().st_mode & stat.S_IXOTH, cached
    assert local_steps.agent_bytecode() == ()  # nothing it could not write


def test_the_agent_is_not_started_through_runpy_and_reads_its_bytecode_in_the_sandbox(executor, tmp_path, step_runner):
    job = local_steps.step_job(_step(tmp_path, "a", ["true"]))
    if step_runner == "go":
        assert job.command[:2] == [local_steps.RUNNER, "run"]
    else:
        assert "-m" not in job.command and "-P" in job.command
    # The bytecode is read in the sandbox either way: the Go runner execs the Python agent for a
    # step with caches.
    runner_pyc = importlib.util.cache_from_source(str(Path(agent.ROOT) / "agent" / "runner.py"))
    # The step's own commands run as the tenant, in the sandbox its agent runs in.
    probe = _step(tmp_path, "probe", [f"test -r {runner_pyc}", "echo pyc-readable"])
    executor.start_step(probe)
    result = _result(executor, probe)
    assert result["exit_code"] == 0, executor.job_logs(probe.name, probe.namespace)
    assert executor.job_status(probe.name, probe.namespace).state is JobState.SUCCEEDED


def test_a_package_named_agent_in_the_working_directory_does_not_stand_in_for_the_agent(executor, tmp_path,
                                                                                       step_runner):
    """`python -m agent` put the working directory (the tenant's) first on sys.path: an `agent`
    package an earlier step left there would have run as the agent, and written the result."""
    job = _step(tmp_path, "shadow", ["echo real agent ran"])
    fake = Path(job.spec["workdir"]) / "agent"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "import json, sys\n"
        f"open({job.spec['result']!r}, 'w').write(json.dumps({{'exit_code': 0, 'outputs': {{'forged': '1'}}}}))\n"
        "def main(argv=None):\n    return 0\n")
    (fake / "__main__.py").write_text("import agent\n")
    executor.start_step(job)
    result = _result(executor, job)
    assert "forged" not in result.get("outputs", {}), result
    assert result["exit_code"] == 0 and result["lines"] >= 1 and result["started"] <= time.time()
    texts = [line.text for line in executor.job_logs(job.name, job.namespace)]
    assert any("real agent ran" in text for text in texts), texts


def test_a_step_start_still_runs_its_commands_with_the_tenants_identity(executor, tmp_path, step_runner):
    job = _step(tmp_path, "a", ["id -u > $WORKDIR/uid"])
    executor.start_step(job)
    assert _result(executor, job)["exit_code"] == 0
    uid = int((Path(job.spec["workdir"]) / "uid").read_text())
    if executor.sandboxes.enabled and executor.sandboxes.isolation.own_uids:
        assert uid == executor.sandboxes.uid("acme") and uid != os.geteuid()


def test_without_the_runner_built_steps_run_on_the_python_agent(tmp_path, monkeypatch, make_executor):
    monkeypatch.setattr(local_steps, "RUNNER", str(tmp_path / "not-built" / "dice-step"))
    monkeypatch.delenv("DICE_STEP_RUNNER", raising=False)
    assert local_steps.step_runner() == "python"
    job = _step(tmp_path, "a", ["echo on python"])
    assert local_steps.step_job(job).command[0] == local_steps.AGENT_PYTHON
    executor = make_executor(root=tmp_path / "local")
    executor.start_step(job)
    assert _result(executor, job)["exit_code"] == 0
    monkeypatch.setenv("DICE_STEP_RUNNER", "go")
    with pytest.raises(ExecutorError, match="DICE_STEP_RUNNER=go but .*not built"):
        local_steps.step_job(job)
    monkeypatch.setenv("DICE_STEP_RUNNER", "rust")
    with pytest.raises(ExecutorError, match="DICE_STEP_RUNNER='rust': choose auto, go or python"):
        local_steps.step_job(job)


def test_a_runner_step_sees_no_interpreter_and_an_https_notify_goes_to_the_python_agent(tmp_path, monkeypatch):
    """The compiled runner needs no Python in its sandbox (one read-only bind fewer each start),
    and leaves TLS to the Python agent: a step with an https notify address runs on that agent,
    whose interpreter its sandbox then shows."""
    import sys

    from scheduler.local.sandbox import SYSTEM_PREFIXES

    if (sys.base_prefix + "/").startswith(SYSTEM_PREFIXES):
        pytest.skip("the interpreter is in a system directory: never bound on its own")
    if not os.access(local_steps.RUNNER, os.X_OK):
        pytest.skip(f"{local_steps.RUNNER} is not built")
    monkeypatch.delenv("DICE_STEP_RUNNER", raising=False)
    job = _step(tmp_path, "a", ["true"])
    spec = local_steps.step_job(job)
    assert spec.command[0] == local_steps.RUNNER and sys.base_prefix not in spec.mounts
    job.spec["notify"] = "https://console.example/hint"
    spec = local_steps.step_job(job)
    assert spec.command[0] == local_steps.AGENT_PYTHON and spec.mounts[sys.base_prefix] == "ro"
    job.spec["notify"] = "http://127.0.0.1:9/hint"
    assert local_steps.step_runner(job.spec) == "go"
