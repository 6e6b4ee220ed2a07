"""A pipeline step on the local kind: the agent as a supervised process, reading its spec from
the step's folder (placed there before it starts, as a Secret volume is mounted before a pod's
containers start) and writing its result there."""

from __future__ import annotations

import json
import os

import agent
from scheduler.base import STEP_TIMEOUT_GRACE, JobSpec, StepJob
from scheduler.local.sandbox import AGENT_PYTHON, step_mounts

AGENT_DIR = os.path.join(agent.ROOT, "agent")


def step_job(step: StepJob) -> JobSpec:
    """The job that runs the step's agent (`python -m agent run`: standard library only)."""
    spec_path = f"{step.folder}/spec.json"  # text paths: a stage of 100 is accepted in one thread
    return JobSpec(
        name=step.name,
        image=step.image,
        command=[AGENT_PYTHON, "-S", "-m", "agent", "run", "--spec", spec_path],
        envs={"PYTHONPATH": agent.ROOT},
        workdir=step.spec["workdir"],
        cpu=step.cpu,
        mem=0,  # the agent and the step's own tools: no address-space limit on local
        timeout=step.timeout + STEP_TIMEOUT_GRACE if step.timeout else None,
        labels=dict(step.labels),
        namespace=step.namespace,
        files={spec_path: json.dumps(step.spec)},  # json.dump never uses the C encoder
        tenant=step.tenant,
        mounts=step_mounts(step.folder, step.spec, AGENT_DIR),  # what its sandbox shows of the host
    )
