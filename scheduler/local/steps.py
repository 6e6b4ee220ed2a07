"""A pipeline step on the local kind: the agent as a supervised process, reading its spec from
the step's folder (placed there before it starts, as a Secret volume is mounted before a pod's
containers start) and writing its result there.

Two agents can run it, with the same spec, log lines, result file and notification: the compiled
step runner (agent/bin/dice-step, built from agent/gorunner by `make install` where Go is
installed: ~2 ms of CPU to start, against ~12 for the Python interpreter and the agent's imports),
and the Python agent (`agent run`). The runner is used when it is built, except for a step with
caches (the Python agent restores and stores them, with agent/safetar.py's rules) or an https
notify address (TLS is the Python agent's: the runner's start does without its packages);
DICE_STEP_RUNNER=python always uses the Python agent, =go requires the runner. What the runner
does not compute itself the console renders into its spec here, with the same Python code:
the step's script (agent.checkout: a checkout's credentials, in a file only the tenant reads) and
the forms of each secret to mask (agent.masking.forms)."""

from __future__ import annotations

import functools
import json
import os

import agent
from agent.checkout import step_script
from agent.masking import forms
from scheduler.base import STEP_TIMEOUT_GRACE, ExecutorError, JobSpec, StepJob
from scheduler.local.sandbox import AGENT_PYTHON, step_mounts

AGENT_DIR = os.path.join(agent.ROOT, "agent")
RUNNER = os.path.join(AGENT_DIR, "bin", "dice-step")  # gitignored; inside the directory sandboxes mount
RUNNERS = ("auto", "go", "python")
# `python -m agent` costs every step runpy's imports (importlib.util, contextlib, collections,
# functools, warnings...): 20.9 ms of CPU for the interpreter and the agent's imports against 14.4
# ms this way (bare interpreter: 10.5 ms; bench/bench_step_start.py --profile). -P: nothing is
# put in front of PYTHONPATH, so the working directory (the tenant's) cannot shadow the agent.
AGENT_BOOT = "import sys; from agent import main; sys.exit(main())"


@functools.cache
def agent_bytecode() -> tuple[str, ...]:
    """The agent's bytecode, written once per console process before its first step (see
    agent.compile_bytecode): the sandbox mounts the agent read-only, so without it every step's
    agent compiled its modules again. The modules it could not write (a read-only installation)."""
    return tuple(agent.compile_bytecode())


def compiled_or_python(variable: str, program: str) -> str:
    """"go" or "python" as `variable` (auto|go|python) chooses between a compiled program and its
    Python twin: auto takes `program` where it is built. A bad value, or go without the program,
    is a ValueError naming the variable."""
    choice = os.environ.get(variable, "").strip().lower() or "auto"
    if choice not in RUNNERS:
        raise ValueError(f"{variable}={choice!r}: choose auto, go or python")
    built = os.access(program, os.X_OK)
    if choice == "go" and not built:
        raise ValueError(f"{variable}=go but {program} is not built (`make install` with Go installed)")
    return "go" if choice != "python" and built else "python"


def step_runner(spec: dict | None = None) -> str:
    """Which agent runs a local step: "go" (agent/bin/dice-step) or "python" (see the module's
    docstring). A bad DICE_STEP_RUNNER, or =go without the runner built, is an ExecutorError."""
    try:
        runner = compiled_or_python("DICE_STEP_RUNNER", RUNNER)
    except ValueError as exc:
        raise ExecutorError(str(exc)) from None
    if runner == "python" or (spec and spec.get("caches")):
        return "python"
    if spec and str(spec.get("notify") or "").startswith("https://"):  # the runner leaves TLS to the Python agent
        return "python"
    return "go"


def mask_forms(secrets) -> list[str]:
    """Every form of every secret (agent.masking.forms), longest first: agent.masking.Masker's
    alternation, as the compiled runner and shim build theirs from it."""
    return sorted({f for s in secrets or [] if s for f in forms(s)}, key=len, reverse=True)


def runner_spec(spec: dict) -> dict:
    """The spec as the Go runner reads it: the step's script rendered (None: nothing to run) and
    the forms of the secrets it masks."""
    return {**spec, "script": step_script(spec), "mask_forms": mask_forms(spec.get("mask"))}


def step_job(step: StepJob) -> JobSpec:
    """The job that runs the step's agent: the Go runner, or `agent run` (standard library only,
    without runpy)."""
    spec_path = f"{step.folder}/spec.json"  # text paths: a stage of 100 is accepted in one thread
    agent_bytecode()  # the Python agent may run it anyway (the runner execs it for what it leaves)
    runner = step_runner(step.spec)
    if runner == "go":
        command = [RUNNER, "run", "--spec", spec_path]
        envs = {"DICE_AGENT_PYTHON": AGENT_PYTHON}
        spec = runner_spec(step.spec)
    else:
        command = [AGENT_PYTHON, "-S", "-P", "-c", AGENT_BOOT, "run", "--spec", spec_path]
        envs = {"PYTHONPATH": agent.ROOT}
        spec = step.spec
    return JobSpec(
        name=step.name,
        image=step.image,
        command=command,
        envs=envs,
        workdir=step.spec["workdir"],
        cpu=step.cpu,
        mem=0,  # the agent and the step's own tools: no address-space limit on local
        timeout=step.timeout + STEP_TIMEOUT_GRACE if step.timeout else None,
        labels=dict(step.labels),
        namespace=step.namespace,
        files={spec_path: json.dumps(spec)},  # json.dump never uses the C encoder
        tenant=step.tenant,
        # what its sandbox shows of the host: the compiled runner needs no interpreter (it execs
        # the Python agent only for what runner_spec leaves to it, which step_runner gives Python)
        mounts=step_mounts(step.folder, step.spec, AGENT_DIR, step.context_path, python=runner == "python"),
    )
