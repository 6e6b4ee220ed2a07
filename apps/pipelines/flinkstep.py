"""The built-in `flink` action (Erda-compatible): a Flink job submitted to the Flink data cluster
of the run's workspace, followed every second until it ends, its output in the step log.

Params, as Erda's action takes them: `resource` (the jar, or a PyFlink .py program, in the run's
directories: `${{ dirs.build }}/job.jar`), `class` (the jar's entry class), `args` (a list, or
one string split like a shell), `flinkConf` {kind: FlinkJob|FlinkSession, parallelism,
jobManagerResource, taskManagerResource}, or all of these as the JSON string `bigDataConf`
(Erda's form; the explicit params win). On a session cluster a FlinkJob runs as a session job
and the JobManager/TaskManager resources are the cluster's own (the log says so); `detach:
true` ends the step once the job runs (a streaming job), else it ends with the job.
"""

from __future__ import annotations

import json
import logging
import shlex

from apps.clusters.services import capabilities, cluster_executor
from apps.pipelines import paths, queue, steplogs
from apps.pipelines.attempts import conclude
from apps.pipelines.choices import TaskStatus
from apps.pipelines.models import PipelineRun, TaskRun
from apps.projects.models import Workspace
from scheduler.base import ExecutorError, JobSpec, JobState

log = logging.getLogger(__name__)

KINDS = ("FlinkJob", "FlinkSession")


def flink_params(params: dict) -> dict:
    """The action's params with `bigDataConf` (a JSON string) read in; ValueError naming the bad one."""
    merged: dict = {}
    raw = params.get("bigDataConf")
    if raw not in (None, ""):
        try:
            conf = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError as exc:
            raise ValueError(f"bigDataConf is not JSON: {exc}")
        if not isinstance(conf, dict):
            raise ValueError("bigDataConf must be a JSON object")
        merged.update(conf)
    merged.update({k: v for k, v in params.items() if k != "bigDataConf" and v not in (None, "")})
    resource = str(merged.get("resource") or "").strip()
    if not resource:
        raise ValueError("flink needs the param resource: the job's jar or .py program (e.g. ${{ dirs.build }}/job.jar)")
    args = merged.get("args") or []
    if isinstance(args, str):
        args = shlex.split(args)
    if not isinstance(args, list):
        raise ValueError("flink: args is a list of strings")
    conf = merged.get("flinkConf") or {}
    if not isinstance(conf, dict):
        raise ValueError("flink: flinkConf is a mapping (kind, parallelism, jobManagerResource, taskManagerResource)")
    kind = str(conf.get("kind") or "FlinkSession")
    if kind not in KINDS:
        raise ValueError(f"flink: flinkConf.kind is FlinkJob or FlinkSession, not {kind!r}")
    parallelism = conf.get("parallelism")
    if parallelism not in (None, ""):
        if not str(parallelism).isdigit() or int(parallelism) < 1:
            raise ValueError(f"flink: flinkConf.parallelism must be a whole number >= 1, not {parallelism!r}")
        parallelism = int(parallelism)
    return {"resource": resource, "class": str(merged.get("class") or ""), "args": [str(a) for a in args],
            "kind": kind, "parallelism": parallelism or None,
            "resources": {k: conf[k] for k in ("jobManagerResource", "taskManagerResource") if conf.get(k)},
            "detach": str(merged.get("detach", "")).lower() in ("true", "1", "yes")}


def command(conf: dict) -> list[str]:
    argv = ["flink", "run"]
    if conf["parallelism"]:
        argv += ["-p", str(conf["parallelism"])]
    if conf["resource"].endswith(".py"):
        argv += ["-py", conf["resource"]]
    else:
        argv += (["-c", conf["class"]] if conf["class"] else []) + [conf["resource"]]
    return argv + conf["args"]


def data_cluster(run: PipelineRun):
    """The Flink cluster among the data clusters of the run's workspace."""
    workspace = Workspace.objects.filter(project_id=run.application.project_id, kind=run.workspace).first()
    found = [c for c in (workspace.data_clusters.all() if workspace else []) if capabilities(c).data_engine == "flink"]
    if not found:
        raise ValueError(f"the {run.workspace} workspace has no Flink data cluster: bind one to it "
                         "(its data clusters) to run flink actions")
    return found[0]


def start(task: TaskRun, run: PipelineRun, params: dict, masker) -> bool:
    conf = flink_params(params)
    cluster = data_cluster(run)
    name, namespace = paths.job_name(run.pk, task.alias, task.attempt), paths.job_namespace(run)
    argv = command(conf)
    lines = [f"submitting to Flink cluster {cluster.name}: {' '.join(shlex.quote(a) for a in argv)}"]
    if conf["kind"] == "FlinkJob":
        lines.append("flinkConf.kind FlinkJob: a session cluster runs it as a session job")
    if conf["resources"]:
        lines.append(f"{', '.join(conf['resources'])}: ignored on a session cluster (its processes are sized by the cluster)")
    steplogs.append_lines(task, [masker(line) for line in lines])
    job = JobSpec(name=name, namespace=namespace, command=argv, workdir=str(paths.dirs_root(run.pk)),
                  tenant=run.application.project.organization.slug,
                  labels={"dice/pipeline-run": str(run.pk), "dice/task": task.alias})
    executor = cluster_executor(cluster)
    executor.run_job(job)
    outputs = {"job_name": name, "cluster": cluster.name, "detach": "true" if conf["detach"] else ""}
    TaskRun.objects.filter(pk=task.pk).update(outputs={**outputs, "lines_seen": "0"})
    queue.send("check_flink", task.pk, task.attempt, countdown=1)
    return False


def check(task_id: int, attempt: int) -> int | None:
    """Follow the job: copy its new log lines into the step's, end the step when the job ends
    (or runs, detached). Returns the run to dispatch when the step ended."""
    task = TaskRun.objects.select_related("run__application__project__organization").filter(
        pk=task_id, attempt=attempt).first()
    if task is None:
        return None
    if task.status != TaskStatus.RUNNING:
        if task.status in (TaskStatus.CANCELLED, TaskStatus.TIMED_OUT):
            cancel(task)  # the step ended without its job: a cancelled run or a timeout stops the job too
        return None
    run, outputs = task.run, dict(task.outputs or {})
    cluster = data_cluster(run)
    executor = cluster_executor(cluster)
    name, namespace = outputs["job_name"], paths.job_namespace(run)
    status = executor.job_status(name, namespace)
    lines = [line.text for line in executor.job_logs(name, namespace)]
    seen = int(outputs.get("lines_seen") or 0)
    if lines[seen:]:
        steplogs.append_lines(task, lines[seen:], stream="stdout")
    outputs["lines_seen"] = str(len(lines))
    result = {"job_name": name, "cluster": cluster.name, "state": status.state.value}
    if status.state is JobState.SUCCEEDED or (outputs.get("detach") and status.state is JobState.RUNNING):
        conclude(task, TaskStatus.SUCCESS, status.message or status.state.value, outputs=result, exit_code=0)
        return run.pk
    if status.state.finished or status.state is JobState.MISSING:
        conclude(task, TaskStatus.FAILED, status.message or status.state.value, outputs=result, exit_code=1,
                 retry=False)
        return run.pk
    TaskRun.objects.filter(pk=task.pk).update(outputs=outputs)
    queue.send("check_flink", task_id, attempt, countdown=1)
    return None


def cancel(task: TaskRun) -> None:
    """The step was cancelled: cancel its job too."""
    outputs = task.outputs or {}
    if outputs.get("job_name"):
        try:
            cluster_executor(data_cluster(task.run)).cancel_job(outputs["job_name"], paths.job_namespace(task.run))
        except (ExecutorError, ValueError) as exc:
            log.warning("cancel of Flink job %s failed: %s", outputs["job_name"], exc)
