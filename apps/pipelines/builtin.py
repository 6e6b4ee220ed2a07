"""Built-in actions that run inside the Celery worker rather than as cluster jobs, because they act
on the console itself: echo, wait, manual-review, release and dice.

- echo: logs `msg` and succeeds.
- wait: succeeds after `wait_time_sec` (or `seconds`) through a Celery countdown: no worker
  thread sleeps meanwhile.
- manual-review: stays running until someone approves (success) or rejects (failed) it on the
  run page or through the API; its `timeout` applies.
- release: makes a Release from a dice.yml found in the run's context (param `dice_yml`, a path
  such as `${{ dirs.checkout }}/dice.yml`; default: dice.yml in the first git-checkout's
  directory), with the image map `image`/`images` and the files of the dice.yml's folder (the
  local cluster runs the services from them); outputs release_id (and Erda's name for it,
  releaseID) and version.
- dice: deploys `release_id` onto a runtime (param `runtime`, default `pr-<number>` for a merge
  request's run (its preview environment, apps.pipelines.previews), else the pushed branch or main)
  of the run's workspace (param `workspace` to pick another) through apps.deploy.deployments,
  then follows the deployment every second (a Celery countdown) until it is healthy (success)
  or failed; outputs runtime_id and deployment_id (and preview_url for a preview).
- cluster-inspect: inspects a cluster now (param `cluster`, default the cluster of the run's
  workspace) through apps.clusters.ops_pipeline, stores the report, logs each finding the run's
  actor may see and outputs their counts by severity (critical, warning, info, unknown) plus
  report_id; with `fail_on: critical` (or `warning`) the step fails when such findings exist.
- image-build: builds the Dockerfile of a step's directory (param `context`, default the first
  directory holding one; `dockerfile`, `image` (default org/project/app), `tag` (default run-<id>))
  into an OCI image without a daemon (apps.pipelines.images: FROM, COPY, ADD, ENV, WORKDIR,
  EXPOSE, CMD, ENTRYPOINT...; RUN is refused) and pushes it to DICE_IMAGE_REGISTRY; outputs
  image (host/name:tag, what the release action's image map takes), digest and image_ref.
- snippet: another pipeline.yml called as an action (Erda). Accepted and planned, but not run
  by this console yet: the task fails at once with a message that says so (no retry).
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import stat
import tarfile
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.clusters import ops_pipeline
from apps.deploy import deployments
from apps.deploy import services as deploy_services
from apps.deploy.models import Deployment, Release
from apps.pipelines import paths, previews, queue, reference, steplogs
from apps.pipelines.attempts import conclude
from apps.pipelines.choices import TaskStatus
from apps.pipelines.images import oci as images_oci
from apps.pipelines.images import registry as images_registry
from apps.pipelines.models import PipelineRun, TaskRun

log = logging.getLogger(__name__)


# Each function returns True when the task ended (its run is to be dispatched by the caller).


def start(task: TaskRun, run: PipelineRun, action, params: dict, ctx, masker) -> bool:
    now = timezone.now()
    TaskRun.objects.filter(pk=task.pk).update(started=task.started or now, params=masker.value(params))
    task.started = task.started or now
    handler = {
        "echo": _echo, "wait": _wait, "manual-review": _manual_review, "release": _release, "dice": _dice,
        "cluster-inspect": _cluster_inspect, "snippet": _snippet, "image-build": _image_build,
    }[task.type]
    try:
        return handler(task, run, action, params, ctx, masker)
    except Exception as exc:  # a built-in's failure is the task's failure, never the worker's
        log.exception("built-in action %s of run %s failed", task.alias, run.pk)
        steplogs.append_lines(task, [masker(f"{task.type} failed: {exc}")])
        conclude(task, TaskStatus.FAILED, masker(str(exc)))
        return True


# A timer message that arrives this much (seconds) before its deadline counts as due.
EARLY = 0.05


def _elapsed(task: TaskRun) -> float:
    return (timezone.now() - (task.started or task.created)).total_seconds()


def _due(left: float) -> bool:
    # Eager mode (DICE_CELERY_EAGER) runs a countdown at once: there every timer is due.
    return left <= EARLY or bool(current_app.conf.task_always_eager)


def _done(task: TaskRun, outputs: dict | None = None, reason: str = "done") -> bool:
    conclude(task, TaskStatus.SUCCESS, reason, outputs=outputs or {}, exit_code=0)
    return True


def _schedule_timeout(task: TaskRun, action) -> None:
    if action.timeout and action.timeout > 0:
        queue.send("check_timeout", task.pk, task.attempt, countdown=action.timeout)


def _echo(task, run, action, params, ctx, masker) -> bool:
    steplogs.append_lines(task, [masker(str(params.get("msg", "")))], stream="stdout")
    return _done(task)


def wait_seconds(params: dict) -> float:
    raw = params.get("wait_time_sec", params.get("seconds", 0))
    try:
        return max(0.0, float(raw))
    except (TypeError, ValueError):
        raise ValueError(f"wait_time_sec must be a number of seconds, got {raw!r}") from None


def _wait(task, run, action, params, ctx, masker) -> bool:
    seconds = wait_seconds(params)
    steplogs.append_lines(task, [f"waiting {seconds:g}s"])
    _schedule_timeout(task, action)
    queue.send("finish_wait", task.pk, task.attempt, countdown=seconds)
    return False


def finish_wait(task_id: int, attempt: int) -> int | None:
    """The wait is over: the task succeeds. Returns the run to dispatch (None: nothing changed)."""
    task = TaskRun.objects.select_related("run").filter(pk=task_id, attempt=attempt).first()
    if task is None or task.status != TaskStatus.RUNNING:
        return None
    left = wait_seconds(task.params or {}) - _elapsed(task)
    if not _due(left):  # a hop of a wait longer than the broker's longest countdown (queue.send)
        queue.send("finish_wait", task.pk, task.attempt, countdown=left)
        return None
    steplogs.append_lines(task, ["waited"])
    _done(task)
    return task.run_id


def _manual_review(task, run, action, params, ctx, masker) -> bool:
    steplogs.append_lines(task, ["waiting for a review: approve or reject it on the run page or the API"])
    _schedule_timeout(task, action)
    return False


def check_timeout(task_id: int, attempt: int) -> int | None:
    """The task's timeout passed: it times out if still running. Returns the run to dispatch."""
    task = TaskRun.objects.select_related("run").filter(pk=task_id, attempt=attempt).first()
    if task is None or task.status != TaskStatus.RUNNING:
        return None
    timeout = reference.pipeline_of(task.run).action(task.alias).timeout
    if not _due(timeout - _elapsed(task)):  # a hop of a long timeout (queue.send caps countdowns)
        queue.send("check_timeout", task.pk, task.attempt, countdown=timeout - _elapsed(task))
        return None
    steplogs.append_lines(task, [f"timed out after {timeout}s"])
    conclude(task, TaskStatus.TIMED_OUT, f"timed out after {timeout}s")
    return task.run_id


def reconcile(task: TaskRun, run: PipelineRun) -> None:
    """After a restart: finish waits and timeouts that came due while no worker ran them (the
    caller dispatches the run afterwards)."""
    action = reference.pipeline_of(run).action(task.alias)
    started = task.started or task.created
    elapsed = (timezone.now() - started).total_seconds()
    if action.timeout and action.timeout > 0 and elapsed >= action.timeout:
        check_timeout(task.pk, task.attempt)
    elif task.type == "wait" and task.started:
        left = max(0.0, wait_seconds(task.params or {}) - elapsed)
        queue.send("finish_wait", task.pk, task.attempt, countdown=left)
    elif task.type == "dice" and (task.outputs or {}).get("deployment_id"):
        queue.send("check_deployment", task.pk, task.attempt, countdown=0)
    elif (task.type in ("echo", "release", "dice", "cluster-inspect", "snippet", "image-build")
          and task.started is None):
        queue.send("run_task", task.pk)


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


SKIP_IN_FILES = (".git", "__pycache__", ".venv", "node_modules")


def _step_files(folder: Path, dirs: Path):
    """(relative path, open file, stat) of each regular file under a folder a step left.

    Read by the console as its own user while other steps of the run may still be changing the
    run's directories: every file is opened without following a link, and where it really is is
    checked on the open descriptor, so nothing outside the folder is read (a file swapped for a
    link, or a parent directory swapped, is skipped). Sizes and counts are capped as they come."""
    base = os.path.realpath(dirs)
    root = os.path.realpath(folder)
    if os.path.commonpath([root, base]) != base:
        raise ValueError(f"{folder} is not in the run's directories")
    total, count = 0, 0
    for current, subdirs, files in os.walk(root, followlinks=False):
        subdirs[:] = sorted(d for d in subdirs if d not in SKIP_IN_FILES)
        for name in sorted(files):
            path = os.path.join(current, name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                continue  # a link, or gone
            with os.fdopen(fd, "rb") as fh:
                st = os.fstat(fd)
                real = os.readlink(f"/proc/self/fd/{fd}")
                if not stat.S_ISREG(st.st_mode) or os.path.commonpath([real, root]) != root:
                    continue
                total, count = total + st.st_size, count + 1
                if total > deploy_services.MAX_UNPACKED or count > deploy_services.MAX_MEMBERS:
                    raise ValueError(f"the files of {folder} are more than "
                                     f"{deploy_services.MAX_UNPACKED // (1024 * 1024)} MiB or "
                                     f"{deploy_services.MAX_MEMBERS} files")
                yield os.path.relpath(real, root), fh, st


def _step_folder_archive(folder: Path, dirs: Path) -> bytes:
    """The files of a folder a step left (the dice.yml's), as a release bundle's tar.gz."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for rel, fh, st in _step_files(folder, dirs):
            info = tarfile.TarInfo(rel)
            info.size, info.mode, info.mtime = st.st_size, st.st_mode & 0o755, int(st.st_mtime)
            tar.addfile(info, fh)
    return buf.getvalue()


def _images(params: dict) -> dict:
    raw = params.get("images", params.get("image")) or {}
    if isinstance(raw, str):
        raw = json.loads(raw) if raw.strip() else {}
    if not isinstance(raw, dict):
        raise ValueError("image must be a map of service name to image reference")
    return {str(k): str(v) for k, v in raw.items()}


def _release(task, run, action, params, ctx, masker) -> bool:
    marker = f"pipeline run {run.pk}, task {task.alias}"
    existing = Release.objects.filter(application_id=run.application_id, pipeline_run_id=run.pk,
                                      description__startswith=marker).first()
    if existing is None:
        path = _dice_yml_path(params, ctx)
        if not path.is_file():
            raise ValueError(f"no dice.yml at {path}: the step that should have left it there did not "
                             f"(on Kubernetes, is DICE_CONSOLE_URL set so steps upload their directories?)")
        text = _read_step_file(path, paths.dirs_root(run.pk))
        extra = str(params.get("description") or "").strip()
        # The files beside the dice.yml go with the release (the local cluster runs the services
        # from them): exactly the checked-out commit, not whatever the repository holds later.
        archive = _step_folder_archive(path.parent, paths.dirs_root(run.pk))
        existing = deploy_services.create_release(
            _actor(run), run.application, spec_text=text, images=_images(params), source_name=path.name,
            pipeline_run_id=run.pk, description=f"{marker}" + (f": {extra}" if extra else ""), files=archive,
        )
        steplogs.append_lines(task, [f"created release {existing} (id {existing.pk}) from {path}, "
                                     "with the files of its folder"])
    release_id = str(existing.pk)
    return _done(task, {"release_id": release_id, "releaseID": release_id, "version": str(existing.version)})


_IMAGE_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
_IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def image_registry() -> str:
    """The registry image-build pushes to and bases come from (DICE_IMAGE_REGISTRY, e.g.
    http://127.0.0.1:5000), '' when the console has none."""
    return str(getattr(settings, "DICE_IMAGE_REGISTRY", "") or os.environ.get("DICE_IMAGE_REGISTRY", "")).strip()


def _build_context(params: dict, ctx) -> Path:
    given = params.get("context")
    if given:
        return Path(str(given))
    for alias in ctx.dirs:
        if (Path(ctx.dirs[alias]) / str(params.get("dockerfile") or "Dockerfile")).is_file():
            return Path(ctx.dirs[alias])
    raise ValueError("no Dockerfile in the run's directories: give the param context (e.g. ${{ dirs.checkout }})")


def _image_build(task, run, action, params, ctx, masker) -> bool:
    """Build the context's Dockerfile (no RUN) into an OCI image and push it (apps.pipelines.images)."""
    url = image_registry()
    if not url:
        raise ValueError("image-build needs a registry: set DICE_IMAGE_REGISTRY (e.g. http://127.0.0.1:5000)")
    dirs = paths.dirs_root(run.pk)
    context = _build_context(params, ctx)
    text = _read_step_file(context / str(params.get("dockerfile") or "Dockerfile"), dirs)
    files = {rel: (fh.read(), st.st_mode) for rel, fh, st in _step_files(context, dirs)}
    project = run.application.project
    name = str(params.get("image") or f"{project.organization.slug}/{project.slug}/{run.application.slug}").lower()
    tag = str(params.get("tag") or f"run-{run.pk}")
    if not _IMAGE_NAME.match(name) or not _IMAGE_TAG.match(tag):
        raise ValueError(f"{name}:{tag} is not an image name and tag a registry takes")
    registry = images_registry.Registry(url)
    started = timezone.now()
    built = images_oci.build(text, sorted(files), files.__getitem__, registry, name, tag)
    seconds = (timezone.now() - started).total_seconds()
    reference = built.reference(registry.host)
    steplogs.append_lines(task, [f"built {reference} ({built.layers} layers, {built.digest}) in {seconds:.1f}s"])
    return _done(task, {"image": reference, "digest": built.digest,
                        "image_ref": f"{registry.host}/{name}@{built.digest}"})


SNIPPET_NOT_RUN = (
    "snippet actions (another pipeline.yml called as an action) are accepted and planned, but this "
    "console does not run them yet: run {what} as a pipeline of its own, or inline its stages here"
)


def _snippet(task, run, action, params, ctx, masker) -> bool:
    config = action.snippet_config
    what = f"'{config.name}'" + (f" from {config.source}" if config.source else "") if config and config.name else "it"
    message = SNIPPET_NOT_RUN.format(what=what)
    steplogs.append_lines(task, [message])
    conclude(task, TaskStatus.FAILED, message, retry=False)
    return True


def _dice(task, run, action, params, ctx, masker) -> bool:
    release_id = params.get("release_id")
    if not release_id:
        raise ValueError("dice needs the param release_id (e.g. ${{ outputs.release.release_id }})")
    release = Release.objects.get(pk=int(release_id), application_id=run.application_id)
    workspace = str(params.get("workspace") or run.workspace).upper()
    if task.review != "approved" and _protected(run, workspace):
        # A protected workspace: the deploy waits, like a manual-review, for someone allowed to
        # deploy there to approve it (services.review_task); the approval starts it.
        steplogs.append_lines(task, [f"{workspace} is protected: waiting for a review by someone allowed to deploy "
                                  "there (approve or reject it on the run page or the API)"])
        TaskRun.objects.filter(pk=task.pk).update(outputs={"awaiting_review": workspace})
        return
    payload = run.trigger_payload or {}
    number = previews.preview_number(run)
    # A merge request's run deploys to its preview runtime, pr-<number>, never over the branch's.
    default = previews.runtime_name(number) if number is not None else payload.get("branch") or "main"
    name = str(params.get("runtime") or default).lower().replace("/", "-")
    with transaction.atomic():
        deployment = deployments.deploy(_actor(run), run.application, workspace, release=release, runtime_name=name)
    steplogs.append_lines(task, [f"deploying {release} to {workspace} runtime {name} (deployment {deployment.pk})"])
    TaskRun.objects.filter(pk=task.pk).update(outputs={"deployment_id": str(deployment.pk)})
    _schedule_timeout(task, action)
    queue.send("check_deployment", task.pk, task.attempt, countdown=1)
    return False


def _protected(run: PipelineRun, workspace: str) -> bool:
    from apps.projects.models import Workspace

    return Workspace.objects.filter(project_id=run.application.project_id, kind=workspace, protected=True).exists()


def resume_after_review(task_id: int) -> int | None:
    """An approved deploy into a protected workspace: run it now (same params as when it paused).
    Returns the run to dispatch when the deploy could not start."""
    task = TaskRun.objects.select_related("run__application", "run__definition").filter(pk=task_id).first()
    if task is None or task.status != TaskStatus.RUNNING or task.review != "approved":
        return None
    run = task.run
    action = reference.pipeline_of(run).action(task.alias)
    _, masker = reference.project_configs(run.application.project_id)
    try:
        _dice(task, run, action, dict(task.params or {}), None, masker)
    except Exception as exc:  # a built-in's failure is the task's failure, never the worker's
        log.exception("deploy of run %s after its review failed", run.pk)
        steplogs.append_lines(task, [f"dice failed: {exc}"])
        conclude(task, TaskStatus.FAILED, str(exc))
        return run.pk
    return None


def check_deployment(task_id: int, attempt: int) -> int | None:
    """Follow the deployment of a `dice` task until it is final (every second, via Celery)."""
    task = TaskRun.objects.select_related("run").filter(pk=task_id, attempt=attempt).first()
    if task is None or task.status != TaskStatus.RUNNING:
        return None
    deployment = Deployment.objects.select_related("runtime").filter(
        pk=int((task.outputs or {}).get("deployment_id") or 0)).first()
    if deployment is None:
        conclude(task, TaskStatus.FAILED, "the deployment disappeared")
    elif deployment.status == "healthy":
        steplogs.append_lines(task, [f"runtime {deployment.runtime} is healthy"])
        outputs = {"runtime_id": str(deployment.runtime_id), "deployment_id": str(deployment.pk)}
        preview = previews.record(task.run, deployment.runtime)
        if preview is not None:
            outputs["preview_url"] = preview.url
            steplogs.append_lines(task, [f"preview {preview.runtime_name}: {preview.url or 'no exposed service'} "
                                         f"(until {preview.expires:%Y-%m-%d %H:%M} UTC)"])
        _done(task, outputs)
    elif deployment.status in ("failed", "cancelled", "superseded"):
        message = getattr(deployment, "message", "") or deployment.status
        steplogs.append_lines(task, [f"deployment {deployment.pk} {deployment.status}: {message}"])
        conclude(task, TaskStatus.FAILED, f"deployment {deployment.status}: {message}")
    else:
        queue.send("check_deployment", task_id, attempt, countdown=1)
        return None
    return task.run_id


def _cluster_inspect(task, run, action, params, ctx, masker) -> bool:
    project = run.application.project
    name = str(params.get("cluster") or ops_pipeline.workspace_cluster(project, run.workspace))
    result = ops_pipeline.inspect_for_pipeline(_actor(run), project, name, str(params.get("fail_on") or ""))
    lines = [f"inspected cluster {result.cluster}: report {result.report_id}"]
    if result.error:
        lines.append(f"the inspection could not finish: {result.error}")
    lines += [f"{f['severity'].upper()} {f['check']} {f['object']}: {f['message']}" for f in result.findings]
    lines.append(", ".join(f"{count} {severity}" for severity, count in result.counts.items()))
    steplogs.append_lines(task, [masker(line) for line in lines], stream="stdout")
    outputs = {**{k: str(v) for k, v in result.counts.items()}, "report_id": str(result.report_id),
               "cluster": result.cluster}
    if result.failed_on:
        level = str(params.get("fail_on")).lower()
        conclude(task, TaskStatus.FAILED, f"{result.failed_on} finding(s) at {level} or worse",
                 outputs=outputs, exit_code=1, retry=False)
        return True
    return _done(task, outputs, f"{sum(result.counts.values())} finding(s)")
