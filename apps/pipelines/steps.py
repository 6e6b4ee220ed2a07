"""A pipeline step on its run's cluster: the cluster of a run, the agent's spec, the StepJob the
cluster runs (scheduler/<kind>/ decides how), and how the step ended.

Where a run keeps its files is apps.pipelines.paths, the reference context apps.pipelines.reference,
a step's log apps.pipelines.steplogs."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from django.conf import settings
from django.db import connection

from apps.clusters.services import capabilities, cluster_ref, node_selector_for
from apps.pipelines import expressions, secrets
from apps.pipelines.context_store import pod_context
from apps.pipelines.models import PipelineRun, TaskRun
from apps.pipelines.paths import cache_archive, dirs_root, job_namespace, step_dir, step_folder
from apps.pipelines.reference import referenced
from apps.projects.models import Workspace
from pipelineyml import Action, PipelineYml
from scheduler.base import ClusterRef, Executor, ExecutorError, JobState, JobStatus, StepJob, dns_label
from scheduler.registry import executor_for

# ---- the cluster of a run ---------------------------------------------------------------------


# The scheduler's view of each cluster a run used lately, with the cluster's row it was made from:
# a step's end and its successor's start each asked for it, and reading the workspace with its
# cluster through the ORM (and making the ClusterRef again) cost more than the rest of a start.
# The row is still read each time (one SQL statement); the ClusterRef is made again whenever any
# column of it (credentials, endpoint, kind...) or the local root differs.
_REFS: dict[int, tuple[tuple, ClusterRef]] = {}


def _cluster_row(project_id: int, kind: str) -> tuple | None:
    """Every column of the cluster the project's workspace of `kind` is bound to, as stored."""
    field = Workspace._meta.get_field("cluster")
    cluster = field.related_model._meta
    quote = connection.ops.quote_name
    columns = ", ".join(f"c.{quote(f.column)}" for f in cluster.concrete_fields)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns} FROM {quote(Workspace._meta.db_table)} w JOIN {quote(cluster.db_table)} c "
            f"ON c.{quote(cluster.pk.column)} = w.{quote(field.column)} "
            f"WHERE w.{quote(Workspace._meta.get_field('project').column)} = %s "
            f"AND w.{quote(Workspace._meta.get_field('kind').column)} = %s", [project_id, kind])
        return cursor.fetchone()


def cluster_of(run: PipelineRun) -> ClusterRef:
    row = _cluster_row(run.application.project_id, run.workspace)
    key = (tuple(row or ()), str(getattr(settings, "DICE_LOCAL_ROOT", "") or ""))
    known = _REFS.get(row[0]) if row else None
    if known is not None and known[0] == key:
        return known[1]
    workspace = Workspace.objects.select_related("cluster").get(project_id=run.application.project_id,
                                                                kind=run.workspace)
    ref = cluster_ref(workspace.cluster)
    # A data cluster's ClusterRef also carries its overcommit ratios (other rows): never kept.
    if row is not None and row[0] == workspace.cluster.pk and not capabilities(workspace.cluster).data_engine:
        if len(_REFS) > 256:
            _REFS.clear()
        _REFS[row[0]] = key, ref
    return ref


def step_node_selector(run: PipelineRun) -> dict[str, str]:
    """The node labels a step requires: the run's workspace's and the job role's `dice/` labels,
    when nodes of the cluster carry them (apps.clusters.services.node_selector_for)."""
    workspace = Workspace.objects.select_related("cluster").get(project_id=run.application.project_id,
                                                                kind=run.workspace)
    return node_selector_for(workspace.cluster, run.workspace, "job")


def run_executor(run: PipelineRun) -> Executor:
    return executor_and_cluster(run)[0]


# Pipeline actions that run on one of the workspace's data clusters: action type -> the data
# engine (Capabilities.data_engine) the cluster must run. Every other step runs on the workspace's
# cluster.
DATA_ACTIONS = {"spark": "spark", "flink": "flink"}


def data_cluster_of(run: PipelineRun, engine: str) -> ClusterRef:
    """The workspace's data cluster running `engine`; without one, the workspace's own cluster
    when its kind runs that engine's actions itself (Capabilities.engines: Kubernetes with the Flink
    operator); else ExecutorError saying how to bind one."""
    workspace = Workspace.objects.select_related("cluster").get(project_id=run.application.project_id,
                                                                kind=run.workspace)
    for cluster in workspace.data_clusters.all():
        if capabilities(cluster).data_engine == engine:
            return cluster_ref(cluster)
    if engine in capabilities(workspace.cluster).engines:
        return cluster_ref(workspace.cluster)
    project = run.application.project
    raise ExecutorError(
        f"workspace {run.workspace} of {project.organization.slug}/{project.slug} has no {engine} data cluster: "
        f"bind one (`dice workspace set {project.organization.slug}/{project.slug} {run.workspace} "
        f"--data-cluster {engine}-local`, or the workspace's page)")


def task_executor(run: PipelineRun, task_type: str, cache: dict | None = None) -> Executor:
    """The executor a step of `task_type` runs on: the workspace's data cluster for a data action
    (`spark`), else the run's cluster. `cache` keeps them per (run, engine) across a pass."""
    engine = DATA_ACTIONS.get(task_type, "")
    key = (run.pk, engine)
    if cache is not None and key in cache:
        return cache[key]
    executor = executor_for(data_cluster_of(run, engine)) if engine else run_executor(run)
    if cache is not None:
        cache[key] = executor
    return executor


def engine_details(run: PipelineRun, tasks: list[TaskRun]) -> dict[str, dict]:
    """alias -> what the data engine says of a data action's job (a `spark` step: its application's
    id, state and the Spark UI's page of it, `job_details` of the kind), for the run page. Only for
    steps that ran on the workspace's data cluster as bound now; an engine that cannot be asked
    gives {"error"} rather than failing the page."""
    found: dict[str, dict] = {}
    cache: dict = {}
    for task in tasks:
        if task.type not in DATA_ACTIONS or not task.job_name or not task.cluster:
            continue
        try:
            ref = data_cluster_of(run, DATA_ACTIONS[task.type])
            if ref.name != task.cluster:
                continue  # the workspace's data cluster changed since: not this one's to answer
            executor = cache.setdefault(ref.name, executor_for(ref))
            details = getattr(executor, "job_details", None)
            if details is not None:
                found[task.alias] = details(task.job_name, job_namespace(run))
        except ExecutorError as exc:
            found[task.alias] = {"error": str(exc)}
    return found


def executor_and_cluster(run: PipelineRun) -> tuple[Executor, ClusterRef]:
    """The executor of the run's cluster, and the cluster (one read of the workspace for both)."""
    ref = cluster_of(run)
    return executor_for(ref), ref


# ---- the step's spec and job -------------------------------------------------------------------


def step_spec(task: TaskRun, run: PipelineRun, action: Action, pipeline: PipelineYml,
              ctx: expressions.Context, masker: secrets.Masker, params: dict, notify: str | None) -> dict:
    """The agent's step.json for the task's current attempt."""
    folder = step_folder(task)
    workdir = ctx.dirs[task.alias]  # action_dir, as text
    envs = {k: expressions.substitute(v, ctx) for k, v in pipeline.envs.items()}
    envs.update({
        "PIPELINE_ID": str(run.pk), "DICE_WORKSPACE": run.workspace,
        "DICE_PROJECT_NAME": run.application.project.slug, "DICE_APPLICATION_NAME": run.application.slug,
    })
    # The directories a step gets (restored on Kubernetes): those of the steps it needs and of the
    # steps it refers to; every earlier step's would make a wide or deep pipeline quadratic.
    reachable = set(task.needs) | referenced(pipeline, [task.alias], "dirs")
    caches = []
    for cache in action.caches:
        path = expressions.substitute(cache.path, ctx)
        full = Path(path) if os.path.isabs(path) else Path(workdir) / path
        key = expressions.substitute(cache.key, ctx) if cache.key else f"{task.alias}:{path}"
        caches.append({"key": key, "path": str(full), "archive": str(cache_archive(run.application.project_id, key))})
    return {
        "version": 1,
        "task_run": task.pk,
        "job": task.job_name,
        "alias": task.alias,
        "type": task.type,
        "workdir": workdir,
        "dirs": {alias: ctx.dirs[alias] for alias in sorted(reachable) if alias in ctx.dirs},
        "commands": [expressions.substitute(c, ctx) for c in action.commands],
        "shell": action.shell or "/bin/sh",
        "params": params,
        "envs": envs,
        "caches": caches,
        "metafile": f"{folder}/metafile",
        "result": f"{folder}/result.json",
        "timeout": action.timeout if action.timeout and action.timeout > 0 else None,
        "mask": masker.secrets,
        "notify": notify,
    }


def agent_image() -> str:
    """The image the agent runs in beside a step on a cluster that runs images (empty: the driver's default)."""
    return str(getattr(settings, "DICE_PIPELINE_AGENT_IMAGE", "") or os.environ.get("DICE_PIPELINE_AGENT_IMAGE", ""))


def default_step_image(action_type: str) -> str:
    """The image of a step that names none, as the operator set it for clusters that run images
    (DICE_PIPELINE_GIT_IMAGE for git-checkout, DICE_PIPELINE_STEP_IMAGE for the others; e.g. a
    mirror's copies where clusters cannot reach Docker Hub). Empty: the driver's default."""
    key = "DICE_PIPELINE_GIT_IMAGE" if action_type == "git-checkout" else "DICE_PIPELINE_STEP_IMAGE"
    return str(getattr(settings, key, "") or os.environ.get(key, ""))


def step_job(run: PipelineRun, task: TaskRun, spec: dict, action: Action, *, carry_context: bool = True,
             node_selector: dict[str, str] | None = None) -> StepJob:
    """The step as the cluster runs it (see scheduler.base.StepJob): where the run's directories
    are (`context_path`) and, with `carry_context` (a cluster whose steps do not share the
    console's filesystem), where the context store is that fills them."""
    return StepJob(
        name=task.job_name,
        namespace=job_namespace(run),
        spec=spec,
        folder=step_folder(task),
        image=action.image or default_step_image(action.type),
        agent_image=agent_image(),
        cpu=action.resources.cpu or 0.1,
        max_cpu=action.resources.max_cpu or 0.0,
        mem=action.resources.mem or 256,
        timeout=spec["timeout"],
        labels={"dice.io/pipeline-run": str(run.pk), "dice.io/task": dns_label(task.alias),
                "dice.io/attempt": str(task.attempt), "dice.io/task-run": str(task.pk)},
        secrets=tuple(spec.get("mask") or ()),
        tenant=run.application.project.organization.slug,
        node_selector=dict(node_selector or {}),
        context=pod_context(run.pk) if carry_context else None,
        context_path=os.fspath(dirs_root(run.pk)),
    )


def launch(executor: Executor, run: PipelineRun, task: TaskRun, spec: dict, action: Action) -> JobStatus:
    """Start the step unless a job of that name exists (then only read it)."""
    caps = executor.capabilities
    selector = step_node_selector(run) if caps.node_selectors else None  # one query: only where it counts
    return executor.start_step(step_job(run, task, spec, action, carry_context=not caps.console_filesystem,
                                        node_selector=selector))


# ---- how it ended ---------------------------------------------------------------------------------


def read_result(task: TaskRun) -> dict | None:
    """The agent's result file. The step's uid owns its folder: a link there is refused, so a step
    cannot make the console read another file (another run's result, the console's own)."""
    try:
        fd = os.open(step_dir(task) / "result.json", os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd) as fh:
            return json.loads(fh.read())
    except (OSError, ValueError):
        return None


def job_state(executor: Executor, run: PipelineRun, task: TaskRun) -> JobStatus:
    """The step's job status; once it has finished, the result the cluster holds (if the agent did
    not write it to the step's folder itself) is kept there, once."""
    status = executor.job_status(task.job_name, job_namespace(run))
    if status.state in (JobState.SUCCEEDED, JobState.FAILED):
        path = step_dir(task) / "result.json"
        if not path.exists():
            result = executor.step_result(task.job_name, job_namespace(run), status)
            if result is not None:
                _keep_result(path, result.as_dict())
    return status


def _keep_result(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".result.json.{os.getpid()}.{threading.get_ident()}.tmp")  # pollers may race
    tmp.write_text(json.dumps(result))
    os.replace(tmp, path)


def finished_job(status: JobStatus) -> bool:
    return status.state.finished or status.state is JobState.MISSING
