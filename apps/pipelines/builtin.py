"""Built-in actions that run inside the Celery worker rather than as cluster jobs, because they act
on the console itself: echo, wait, manual-review, release and dice.

- echo: logs `msg` and succeeds.
- wait: succeeds after `wait_time_sec` (or `seconds`) through a Celery countdown: no worker
  thread sleeps meanwhile.
- manual-review: stays running until someone approves (success) or rejects (failed) it on the
  run page or through the API; its `timeout` applies.
- release: makes a Release from a dice.yml found in the run's context (param `dice_yml`, a path
  such as `${{ dirs.checkout }}/dice.yml`; default: dice.yml in the first git-checkout's
  directory), with the image map `image`/`images`; outputs release_id (and Erda's name for it,
  releaseID) and version.
- dice: deploys `release_id` onto a runtime (param `runtime`, default the pushed branch or main)
  of the run's workspace (param `workspace` to pick another) through apps.deploy.deployments,
  then follows the deployment every second (a Celery countdown) until it is healthy (success)
  or failed; outputs runtime_id and deployment_id.
- cluster-inspect: inspects a cluster now (param `cluster`, default the cluster of the run's
  workspace) through apps.clusters.ops_pipeline, stores the report, logs each finding the run's
  actor may see and outputs their counts by severity (critical, warning, info, unknown) plus
  report_id; with `fail_on: critical` (or `warning`) the step fails when such findings exist.
- snippet: another pipeline.yml called as an action (Erda). Accepted and planned, but not run
  by this console yet: the task fails at once with a message that says so (no retry).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from django.utils import timezone

from apps.pipelines import engine, steps
from apps.pipelines.choices import TaskStatus
from apps.pipelines.models import PipelineRun, TaskRun

log = logging.getLogger(__name__)


def _tasks():
    from apps.pipelines import tasks

    return tasks


def start(task: TaskRun, run: PipelineRun, action, params: dict, ctx, masker) -> None:
    now = timezone.now()
    TaskRun.objects.filter(pk=task.pk).update(started=task.started or now, params=masker.value(params))
    task.started = task.started or now
    handler = {
        "echo": _echo, "wait": _wait, "manual-review": _manual_review, "release": _release, "dice": _dice,
        "cluster-inspect": _cluster_inspect, "snippet": _snippet,
    }[task.type]
    try:
        handler(task, run, action, params, ctx, masker)
    except Exception as exc:  # a built-in's failure is the task's failure, never the worker's
        log.exception("built-in action %s of run %s failed", task.alias, run.pk)
        steps.append_lines(task, [masker(f"{task.type} failed: {exc}")])
        engine.conclude(task, TaskStatus.FAILED, masker(str(exc)))
        engine.dispatch(run.pk)


def _done(task: TaskRun, outputs: dict | None = None, reason: str = "done") -> None:
    engine.conclude(task, TaskStatus.SUCCESS, reason, outputs=outputs or {}, exit_code=0)
    engine.dispatch(task.run_id)


def _schedule_timeout(task: TaskRun, action) -> None:
    if action.timeout and action.timeout > 0:
        _tasks().check_timeout.apply_async((task.pk, task.attempt), countdown=action.timeout)


def _echo(task, run, action, params, ctx, masker) -> None:
    steps.append_lines(task, [masker(str(params.get("msg", "")))], stream="stdout")
    _done(task)


def wait_seconds(params: dict) -> float:
    raw = params.get("wait_time_sec", params.get("seconds", 0))
    try:
        return max(0.0, float(raw))
    except (TypeError, ValueError):
        raise ValueError(f"wait_time_sec must be a number of seconds, got {raw!r}") from None


def _wait(task, run, action, params, ctx, masker) -> None:
    seconds = wait_seconds(params)
    steps.append_lines(task, [f"waiting {seconds:g}s"])
    _schedule_timeout(task, action)
    _tasks().finish_wait.apply_async((task.pk, task.attempt), countdown=seconds)


def finish_wait(task_id: int, attempt: int) -> None:
    task = TaskRun.objects.select_related("run").filter(pk=task_id, attempt=attempt).first()
    if task is None or task.status != TaskStatus.RUNNING:
        return
    steps.append_lines(task, ["waited"])
    _done(task)


def _manual_review(task, run, action, params, ctx, masker) -> None:
    steps.append_lines(task, ["waiting for a review: approve or reject it on the run page or the API"])
    _schedule_timeout(task, action)


def check_timeout(task_id: int, attempt: int) -> None:
    task = TaskRun.objects.select_related("run").filter(pk=task_id, attempt=attempt).first()
    if task is None or task.status != TaskStatus.RUNNING:
        return
    timeout = steps.pipeline_of(task.run).action(task.alias).timeout
    steps.append_lines(task, [f"timed out after {timeout}s"])
    engine.conclude(task, TaskStatus.TIMED_OUT, f"timed out after {timeout}s")
    engine.dispatch(task.run_id)


def reconcile(task: TaskRun, run: PipelineRun) -> None:
    """After a restart: finish waits and timeouts that came due while no worker ran them."""
    action = steps.pipeline_of(run).action(task.alias)
    started = task.started or task.created
    elapsed = (timezone.now() - started).total_seconds()
    if action.timeout and action.timeout > 0 and elapsed >= action.timeout:
        check_timeout(task.pk, task.attempt)
    elif task.type == "wait" and task.started:
        left = max(0.0, wait_seconds(task.params or {}) - elapsed)
        _tasks().finish_wait.apply_async((task.pk, task.attempt), countdown=left)
    elif task.type == "dice" and (task.outputs or {}).get("deployment_id"):
        _tasks().check_deployment.apply_async((task.pk, task.attempt), countdown=0)
    elif task.type in ("echo", "release", "dice", "cluster-inspect", "snippet") and task.started is None:
        _tasks().run_task.delay(task.pk)


def _actor(run: PipelineRun):
    """Who acts for the run: whoever started it, else whoever saved its definition."""
    if run.created_by is not None:
        return run.created_by
    if run.definition_id and run.definition.created_by is not None:
        return run.definition.created_by
    return None


def _dice_yml_path(params: dict, ctx) -> Path:
    given = params.get("dice_yml")
    if given:
        return Path(str(given))
    pipeline_dirs = ctx.dirs
    for alias in pipeline_dirs:
        candidate = Path(pipeline_dirs[alias]) / "dice.yml"
        if candidate.is_file():
            return candidate
    raise ValueError("no dice.yml: give the param dice_yml (e.g. ${{ dirs.checkout }}/dice.yml)")


def _read_step_file(path: Path, dirs: Path) -> str:
    """A file a step left in the run's directories, read by the console (as its own user): only
    from there, never through a link leading elsewhere (a step could point it at the console's
    keys or another tenant's files)."""
    real, base = os.path.realpath(path), os.path.realpath(dirs)
    if os.path.commonpath([real, base]) != base:
        raise ValueError(f"{path} is not in the run's directories ({dirs}): the console reads a step's files "
                         "only from there")
    fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, encoding="utf-8") as fh:
        return fh.read()


def _images(params: dict) -> dict:
    raw = params.get("images", params.get("image")) or {}
    if isinstance(raw, str):
        raw = json.loads(raw) if raw.strip() else {}
    if not isinstance(raw, dict):
        raise ValueError("image must be a map of service name to image reference")
    return {str(k): str(v) for k, v in raw.items()}


def _release(task, run, action, params, ctx, masker) -> None:
    from apps.deploy import services as deploy_services
    from apps.deploy.models import Release

    marker = f"pipeline run {run.pk}, task {task.alias}"
    existing = Release.objects.filter(application_id=run.application_id, pipeline_run_id=run.pk,
                                      description__startswith=marker).first()
    if existing is None:
        path = _dice_yml_path(params, ctx)
        if not path.is_file():
            raise ValueError(f"no dice.yml at {path}: the step that should have left it there did not "
                             f"(on Kubernetes, is DICE_CONSOLE_URL set so steps upload their directories?)")
        text = _read_step_file(path, steps.dirs_root(run.pk))
        extra = str(params.get("description") or "").strip()
        existing = deploy_services.create_release(
            _actor(run), run.application, spec_text=text, images=_images(params), source_name=path.name,
            pipeline_run_id=run.pk, description=f"{marker}" + (f": {extra}" if extra else ""),
        )
        steps.append_lines(task, [f"created release {existing} (id {existing.pk}) from {path}"])
    release_id = str(existing.pk)
    _done(task, {"release_id": release_id, "releaseID": release_id, "version": str(existing.version)})


SNIPPET_NOT_RUN = (
    "snippet actions (another pipeline.yml called as an action) are accepted and planned, but this "
    "console does not run them yet: run {what} as a pipeline of its own, or inline its stages here"
)


def _snippet(task, run, action, params, ctx, masker) -> None:
    config = action.snippet_config
    what = f"'{config.name}'" + (f" from {config.source}" if config.source else "") if config and config.name else "it"
    message = SNIPPET_NOT_RUN.format(what=what)
    steps.append_lines(task, [message])
    engine.conclude(task, TaskStatus.FAILED, message, retry=False)
    engine.dispatch(run.pk)


def _dice(task, run, action, params, ctx, masker) -> None:
    from django.db import transaction

    from apps.deploy import deployments
    from apps.deploy.models import Release

    release_id = params.get("release_id")
    if not release_id:
        raise ValueError("dice needs the param release_id (e.g. ${{ outputs.release.release_id }})")
    release = Release.objects.get(pk=int(release_id), application_id=run.application_id)
    workspace = str(params.get("workspace") or run.workspace).upper()
    payload = run.trigger_payload or {}
    name = str(params.get("runtime") or payload.get("branch") or "main").lower().replace("/", "-")
    with transaction.atomic():
        deployment = deployments.deploy(_actor(run), run.application, workspace, release=release, runtime_name=name)
    steps.append_lines(task, [f"deploying {release} to {workspace} runtime {name} (deployment {deployment.pk})"])
    TaskRun.objects.filter(pk=task.pk).update(outputs={"deployment_id": str(deployment.pk)})
    _schedule_timeout(task, action)
    _tasks().check_deployment.apply_async((task.pk, task.attempt), countdown=1)


def check_deployment(task_id: int, attempt: int) -> None:
    """Follow the deployment of a `dice` task until it is final (every second, via Celery)."""
    from apps.deploy.models import Deployment

    task = TaskRun.objects.select_related("run").filter(pk=task_id, attempt=attempt).first()
    if task is None or task.status != TaskStatus.RUNNING:
        return
    deployment = Deployment.objects.select_related("runtime").filter(
        pk=int((task.outputs or {}).get("deployment_id") or 0)).first()
    if deployment is None:
        engine.conclude(task, TaskStatus.FAILED, "the deployment disappeared")
    elif deployment.status == "healthy":
        steps.append_lines(task, [f"runtime {deployment.runtime} is healthy"])
        _done(task, {"runtime_id": str(deployment.runtime_id), "deployment_id": str(deployment.pk)})
        return
    elif deployment.status in ("failed", "cancelled", "superseded"):
        message = getattr(deployment, "message", "") or deployment.status
        steps.append_lines(task, [f"deployment {deployment.pk} {deployment.status}: {message}"])
        engine.conclude(task, TaskStatus.FAILED, f"deployment {deployment.status}: {message}")
    else:
        _tasks().check_deployment.apply_async((task_id, attempt), countdown=1)
        return
    engine.dispatch(task.run_id)


def _cluster_inspect(task, run, action, params, ctx, masker) -> None:
    from apps.clusters import ops_pipeline

    project = run.application.project
    name = str(params.get("cluster") or ops_pipeline.workspace_cluster(project, run.workspace))
    result = ops_pipeline.inspect_for_pipeline(_actor(run), project, name, str(params.get("fail_on") or ""))
    lines = [f"inspected cluster {result.cluster}: report {result.report_id}"]
    if result.error:
        lines.append(f"the inspection could not finish: {result.error}")
    lines += [f"{f['severity'].upper()} {f['check']} {f['object']}: {f['message']}" for f in result.findings]
    lines.append(", ".join(f"{count} {severity}" for severity, count in result.counts.items()))
    steps.append_lines(task, [masker(line) for line in lines], stream="stdout")
    outputs = {**{k: str(v) for k, v in result.counts.items()}, "report_id": str(result.report_id),
               "cluster": result.cluster}
    if result.failed_on:
        level = str(params.get("fail_on")).lower()
        engine.conclude(task, TaskStatus.FAILED, f"{result.failed_on} finding(s) at {level} or worse",
                        outputs=outputs, exit_code=1, retry=False)
        engine.dispatch(run.pk)
        return
    _done(task, outputs, f"{sum(result.counts.values())} finding(s)")
