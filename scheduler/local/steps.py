"""A pipeline step on the local kind: the agent as a supervised process, reading its spec from
the step's folder (placed there before it starts, as a Secret volume is mounted before a pod's
containers start) and writing its result there."""

from __future__ import annotations

import functools
import json
import os

import agent
from scheduler.base import STEP_TIMEOUT_GRACE, JobSpec, StepJob
from scheduler.local.sandbox import AGENT_PYTHON, step_mounts

AGENT_DIR = os.path.join(agent.ROOT, "agent")
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


def step_job(step: StepJob) -> JobSpec:
    """The job that runs the step's agent (`agent run`, standard library only, without runpy)."""
    spec_path = f"{step.folder}/spec.json"  # text paths: a stage of 100 is accepted in one thread
    agent_bytecode()
    return JobSpec(
        name=step.name,
        image=step.image,
        command=[AGENT_PYTHON, "-S", "-P", "-c", AGENT_BOOT, "run", "--spec", spec_path],
        envs={"PYTHONPATH": agent.ROOT},
        workdir=step.spec["workdir"],
        cpu=step.cpu,
        mem=0,  # the agent and the step's own tools: no address-space limit on local
        timeout=step.timeout + STEP_TIMEOUT_GRACE if step.timeout else None,
        labels=dict(step.labels),
        namespace=step.namespace,
        files={spec_path: json.dumps(step.spec)},  # json.dump never uses the C encoder
        tenant=step.tenant,
        mounts=step_mounts(step.folder, step.spec, AGENT_DIR, step.context_path),  # what its sandbox shows of the host
    )
