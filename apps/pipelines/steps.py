"""Steps on a cluster: where a run keeps its files, the agent's spec, the job, its logs and result."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sys
from pathlib import Path

from django.conf import settings
from django.db import transaction

from apps.pipelines import expressions, secrets
from apps.pipelines.choices import LogStream
from apps.pipelines.models import PipelineRun, ProjectConfig, TaskLog, TaskRun
from apps.pipelines.spec import Action, PipelineYml, parse_pipeline_yml
from scheduler.base import ClusterRef, Executor, JobSpec, JobState, JobStatus, dns_label

AGENT_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding the `agent` package
TIMEOUT_GRACE = 30  # seconds the cluster waits beyond the agent's own timeout before killing the job


def pipelines_root() -> Path:
    explicit = getattr(settings, "DICE_PIPELINE_ROOT", "") or os.environ.get("DICE_PIPELINE_ROOT", "")
    return Path(explicit) if explicit else Path(settings.DATA_DIR) / "pipelines"


def run_dir(run_id: int) -> Path:
    return pipelines_root() / "runs" / str(run_id)


def action_dir(run_id: int, alias: str) -> Path:
    """`${{ dirs.<alias> }}`: the action's working directory, shared with later steps."""
    return run_dir(run_id) / "dirs" / alias


def step_dir(task: TaskRun) -> Path:
    return run_dir(task.run_id) / "steps" / f"{task.alias}-{task.attempt}"


def cache_archive(project_id: int, key: str) -> Path:
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return pipelines_root() / "caches" / str(project_id) / f"{digest}.tar.gz"


def job_name(run_id: int, alias: str, attempt: int) -> str:
    """Deterministic and DNS-safe: the same attempt of the same task always has the same job."""
    base = f"p{run_id}-{dns_label(alias, 40)}-{attempt}"
    if len(base) > 63 or dns_label(alias, 40) != alias.lower():
        digest = hashlib.sha1(alias.encode()).hexdigest()[:6]
        base = f"p{run_id}-{dns_label(alias, 30)}-{digest}-{attempt}"
    return base[:63]


def job_namespace(run: PipelineRun) -> str:
    return f"pipelines-{run.application.project_id}"


# ---- the cluster of a run ---------------------------------------------------------------------


def cluster_of(run: PipelineRun) -> ClusterRef:
    from apps.clusters.services import cluster_ref
    from apps.projects.models import Workspace

    workspace = Workspace.objects.select_related("cluster").get(project_id=run.application.project_id,
                                                                kind=run.workspace)
    return cluster_ref(workspace.cluster)


def executor_for(run: PipelineRun) -> Executor:
    from scheduler.registry import get_executor

    return get_executor(cluster_of(run))


# ---- the parsed pipeline and the reference context -------------------------------------------

_PARSED: dict[str, PipelineYml] = {}


def pipeline_of(run: PipelineRun) -> PipelineYml:
    """The run's pipeline, parsed once per process (keyed by the text's hash)."""
    key = hashlib.sha256(run.source.encode()).hexdigest()
    found = _PARSED.get(key)
    if found is None:
        if len(_PARSED) > 64:
            _PARSED.clear()
        found = _PARSED[key] = parse_pipeline_yml(run.source, source=run.name or "pipeline.yml")
    return found


def project_configs(project_id: int) -> tuple[dict[str, str], secrets.Masker]:
    values, hidden = {}, []
    for config in ProjectConfig.objects.filter(project_id=project_id):
        plain = config.plain_value()
        values[config.key] = plain
        if config.secret:
            hidden.append(plain)
    return values, secrets.Masker(hidden)


def context_for(run: PipelineRun, pipeline: PipelineYml) -> tuple[expressions.Context, secrets.Masker]:
    configs, masker = project_configs(run.application.project_id)
    aliases = [a.alias for a in pipeline.actions]
    outputs = {
        alias: outputs or {}
        for alias, outputs in TaskRun.objects.filter(run_id=run.pk, status="success").values_list("alias", "outputs")
    }
    payload = run.trigger_payload or {}
    ctx = expressions.Context(
        params=dict(run.params or {}),
        configs=configs,
        outputs=outputs,
        dirs={alias: str(action_dir(run.pk, alias)) for alias in aliases},
        triggers={payload["event"]: payload} if payload.get("event") else {},
        aliases=set(aliases),
    )
    return ctx, masker


def step_spec(task: TaskRun, run: PipelineRun, action: Action, pipeline: PipelineYml,
              ctx: expressions.Context, masker: secrets.Masker, params: dict, notify: str | None) -> dict:
    """The agent's step.json for the task's current attempt."""
    folder = step_dir(task)
    workdir = action_dir(run.pk, task.alias)
    envs = {k: expressions.substitute(v, ctx) for k, v in pipeline.envs.items()}
    envs.update({
        "PIPELINE_ID": str(run.pk), "DICE_WORKSPACE": run.workspace,
        "DICE_PROJECT_NAME": run.application.project.slug, "DICE_APPLICATION_NAME": run.application.slug,
    })
    caches = []
    for cache in action.caches:
        path = expressions.substitute(cache.path, ctx)
        full = Path(path) if os.path.isabs(path) else workdir / path
        key = expressions.substitute(cache.key, ctx) if cache.key else f"{task.alias}:{path}"
        caches.append({"key": key, "path": str(full), "archive": str(cache_archive(run.application.project_id, key))})
    return {
        "version": 1,
        "task_run": task.pk,
        "job": task.job_name,
        "alias": task.alias,
        "type": task.type,
        "workdir": str(workdir),
        "dirs": {alias: path for alias, path in ctx.dirs.items() if alias in set(task.needs) | _ancestors(task, pipeline)},
        "commands": [expressions.substitute(c, ctx) for c in action.commands],
        "shell": action.shell or "/bin/sh",
        "params": params,
        "envs": envs,
        "caches": caches,
        "metafile": str(folder / "metafile"),
        "result": str(folder / "result.json"),
        "timeout": action.timeout if action.timeout and action.timeout > 0 else None,
        "mask": masker.secrets,
        "notify": notify,
    }


def _ancestors(task: TaskRun, pipeline: PipelineYml) -> set[str]:
    seen: set[str] = set()
    stack = list(pipeline.dependencies.get(task.alias, ()))
    while stack:
        alias = stack.pop()
        if alias not in seen:
            seen.add(alias)
            stack.extend(pipeline.dependencies.get(alias, ()))
    return seen


def launch(executor: Executor, run: PipelineRun, task: TaskRun, spec: dict, action: Action) -> JobStatus:
    """Write the spec and start the job unless a job of that name exists (then only read it)."""
    folder = step_dir(task)
    folder.mkdir(parents=True, exist_ok=True)
    spec_path = folder / "spec.json"
    if not spec_path.exists():
        tmp = folder / ".spec.json.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds resolved secrets
        with os.fdopen(fd, "w") as fh:
            json.dump(spec, fh)
        os.replace(tmp, spec_path)
    Path(spec["workdir"]).mkdir(parents=True, exist_ok=True)
    timeout = spec["timeout"] + TIMEOUT_GRACE if spec["timeout"] else None
    job = JobSpec(
        name=task.job_name,
        image=action.image or "",
        command=[sys.executable, "-m", "agent", "run", "--spec", str(spec_path)],
        envs={"PYTHONPATH": AGENT_ROOT},
        workdir=spec["workdir"],
        cpu=action.resources.cpu or 0.1,
        mem=0,  # the agent and the step's own tools: no address-space limit on local
        timeout=timeout,
        labels={"dice.io/pipeline-run": str(run.pk), "dice.io/task": dns_label(task.alias)},
        namespace=job_namespace(run),
    )
    return executor.run_job(job)


# ---- results and logs ---------------------------------------------------------------------------


def read_result(task: TaskRun) -> dict | None:
    try:
        return json.loads((step_dir(task) / "result.json").read_text())
    except (OSError, ValueError):
        return None


def job_state(executor: Executor, run: PipelineRun, task: TaskRun) -> JobStatus:
    return executor.job_status(task.job_name, job_namespace(run))


def _parse(raw_text: str, fallback_ts: float, fallback_stream: str) -> tuple[float, str, str]:
    if raw_text.startswith('{"n"'):
        try:
            data = json.loads(raw_text)
            return float(data["ts"]), str(data.get("stream") or "stdout"), str(data.get("text", ""))
        except (ValueError, KeyError, TypeError):
            pass
    return fallback_ts, fallback_stream, raw_text


def pump_logs(executor: Executor, run: PipelineRun, task: TaskRun, masker: secrets.Masker | None = None) -> int:
    """Persist the job's lines not persisted yet; returns how many. Safe to call from several
    places at once: the cursor moves by compare-and-set, a loser's insert is rolled back and retried."""
    if not task.job_name:
        return 0
    if masker is None:
        _, masker = project_configs(run.application.project_id)
    for _ in range(5):
        count = _pump_once(executor, run, task, masker)
        if count is not None:
            return count
    return 0


def _pump_once(executor: Executor, run: PipelineRun, task: TaskRun, masker: secrets.Masker) -> int | None:
    fresh = [line for line in executor.job_logs(task.job_name, job_namespace(run)) if line.number > task.log_cursor]
    if not fresh:
        return 0
    rows = []
    number = task.last_line
    for line in fresh:
        stamp, stream, text = _parse(line.text, line.timestamp, line.stream)
        number += 1
        stream = stream if stream in LogStream.values else LogStream.STDOUT
        rows.append(TaskLog(task_run_id=task.pk, number=number, attempt=task.attempt, stream=stream,
                            timestamp=dt.datetime.fromtimestamp(stamp, tz=dt.UTC), text=masker(text)))
    cursor = fresh[-1].number
    try:
        with transaction.atomic():
            moved = TaskRun.objects.filter(pk=task.pk, log_cursor=task.log_cursor, last_line=task.last_line).update(
                log_cursor=cursor, last_line=number)
            if not moved:
                raise _LostRace
            TaskLog.objects.bulk_create(rows)
    except _LostRace:
        task.refresh_from_db(fields=["log_cursor", "last_line"])
        return None
    task.log_cursor, task.last_line = cursor, number
    return len(rows)


class _LostRace(Exception):
    pass


def append_lines(task: TaskRun, texts: list[str], stream: str = LogStream.SYSTEM) -> None:
    """Lines written by the console itself (built-in actions, attempts, results)."""
    if not texts:
        return
    from django.db.models import F
    from django.utils import timezone

    with transaction.atomic():
        locked = TaskRun.objects.select_for_update().filter(pk=task.pk)
        current = locked.values_list("last_line", flat=True).first() or 0
        now = timezone.now()
        TaskLog.objects.bulk_create(
            TaskLog(task_run_id=task.pk, number=current + i, attempt=task.attempt, stream=stream,
                    timestamp=now, text=text)
            for i, text in enumerate(texts, 1)
        )
        TaskRun.objects.filter(pk=task.pk).update(last_line=F("last_line") + len(texts))
    task.last_line = current + len(texts)


def finished_job(status: JobStatus) -> bool:
    return status.state.finished or status.state is JobState.MISSING
