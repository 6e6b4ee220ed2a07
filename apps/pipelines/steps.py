"""Steps on a cluster: where a run keeps its files, the agent's spec, the job, its logs and result."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from pathlib import Path

from django.conf import settings
from django.db import transaction

from apps.logs import services as log_services
from apps.pipelines import expressions, secrets
from apps.pipelines.choices import LogStream
from apps.pipelines.models import PipelineRun, ProjectConfig, TaskRun
from pipelineyml import Action, PipelineYml, parse_pipeline_yml
from scheduler.base import ClusterRef, Executor, JobSpec, JobState, JobStatus, dns_label

AGENT_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding the `agent` package
AGENT_DIR = os.path.join(AGENT_ROOT, "agent")
# The agent's interpreter: the console's own, without its virtualenv (the agent is standard library
# only), and the installation it needs (mounted read-only in a local step's sandbox unless /usr has it).
AGENT_PYTHON = os.path.realpath(sys.executable)
AGENT_MOUNTS = {AGENT_DIR: "ro", **({} if sys.base_prefix.startswith("/usr/") else {sys.base_prefix: "ro"})}
TIMEOUT_GRACE = 30  # seconds the cluster waits beyond the agent's own timeout before killing the job


def pipelines_root() -> Path:
    explicit = getattr(settings, "DICE_PIPELINE_ROOT", "") or os.environ.get("DICE_PIPELINE_ROOT", "")
    return _root(str(explicit), str(settings.DATA_DIR))


@functools.lru_cache(maxsize=16)
def _root(explicit: str, data_dir: str) -> Path:
    return Path(explicit) if explicit else Path(data_dir) / "pipelines"


def run_dir(run_id: int) -> Path:
    return _run_dir(pipelines_root(), run_id)


@functools.lru_cache(maxsize=256)  # a step's paths all start here: built once per run, not per call
def _run_dir(root: Path, run_id: int) -> Path:
    return root / "runs" / str(run_id)


def dirs_root(run_id: int) -> Path:
    return run_dir(run_id) / "dirs"


def action_dir(run_id: int, alias: str) -> Path:
    """`${{ dirs.<alias> }}`: the action's working directory, shared with later steps."""
    return dirs_root(run_id) / alias


def step_dir(task: TaskRun) -> Path:
    return Path(step_folder(task))


def step_folder(task: TaskRun) -> str:
    """step_dir as text: a stage's 100 specs are built in one thread, and pathlib's joins (a dozen
    per step) cost more than the rest of a spec."""
    return f"{_run_text(pipelines_root(), task.run_id)}/steps/{task.alias}-{task.attempt}"


@functools.lru_cache(maxsize=256)
def _run_text(root: Path, run_id: int) -> str:
    return os.fspath(_run_dir(root, run_id))


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


def step_node_selector(run: PipelineRun) -> dict[str, str]:
    """The node labels a step's pod requires: the run's workspace's and the job role's `dice/`
    labels, when nodes of the cluster carry them (apps.clusters.services.node_selector_for)."""
    from apps.clusters.services import node_selector_for
    from apps.projects.models import Workspace

    workspace = Workspace.objects.select_related("cluster").get(project_id=run.application.project_id,
                                                                kind=run.workspace)
    return node_selector_for(workspace.cluster, run.workspace, "job")


def executor_for(run: PipelineRun) -> Executor:
    return executor_and_cluster(run)[0]


def executor_and_cluster(run: PipelineRun) -> tuple[Executor, ClusterRef]:
    """The executor of the run's cluster, and the cluster (one read of the workspace for both)."""
    from scheduler.registry import get_executor

    ref = cluster_of(run)
    return get_executor(ref), ref


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


def referenced(pipeline: PipelineYml, aliases, kind: str) -> set[str]:
    """The actions whose `kind` (outputs, dirs) the given actions refer to."""
    return {ref.target for alias in aliases for ref in pipeline.action(alias).references if ref.kind == kind}


def context_for(run: PipelineRun, pipeline: PipelineYml, for_aliases=None) -> tuple[expressions.Context, secrets.Masker]:
    """The reference context of the run. With `for_aliases`, only the outputs those actions refer
    to are read (a step of a 1,000-task run need not decode 999 outputs it never uses)."""
    configs, masker = project_configs(run.application.project_id)
    aliases = [a.alias for a in pipeline.actions]
    finished = TaskRun.objects.filter(run_id=run.pk, status="success")
    if for_aliases is not None:
        finished = finished.filter(alias__in=referenced(pipeline, for_aliases, "outputs"))
    outputs = {alias: outputs or {} for alias, outputs in finished.values_list("alias", "outputs")}
    payload = run.trigger_payload or {}
    dirs = str(dirs_root(run.pk))
    ctx = expressions.Context(
        params=dict(run.params or {}),
        configs=configs,
        outputs=outputs,
        dirs={alias: os.path.join(dirs, alias) for alias in aliases},  # action_dir, as text
        triggers={payload["event"]: payload} if payload.get("event") else {},
        aliases=set(aliases),
    )
    return ctx, masker


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


def launch(executor: Executor, run: PipelineRun, task: TaskRun, spec: dict, action: Action) -> JobStatus:
    """Start the step's job unless a job of that name exists (then only read it). The agent reads
    its spec from the step's folder: on local the cluster places it there before the process
    starts (a relaunch keeps the attempt's first); on Kubernetes it is a Secret mounted in the pod."""
    if getattr(executor, "kind", "") == "kubernetes":
        return launch_kubernetes(executor, run, task, spec, action)
    # text paths and no file written here: a stage of 100 is accepted in one thread, each µs counts
    folder = step_folder(task)
    spec_path = f"{folder}/spec.json"
    timeout = spec["timeout"] + TIMEOUT_GRACE if spec["timeout"] else None
    # What the step's sandbox shows of the host (the local cluster's): its folder (spec, metafile,
    # result), its directory and those it may use, its project's cache archives, the agent's code.
    mounts = {folder: "rw", **dict.fromkeys(spec["dirs"].values(), "rw"), **AGENT_MOUNTS}
    for cache in spec["caches"]:
        mounts[os.path.dirname(cache["archive"])] = "rw"
    job = JobSpec(
        name=task.job_name,
        image=action.image or "",
        command=[AGENT_PYTHON, "-S", "-m", "agent", "run", "--spec", spec_path],  # stdlib only
        envs={"PYTHONPATH": AGENT_ROOT},
        workdir=spec["workdir"],
        cpu=action.resources.cpu or 0.1,
        mem=0,  # the agent and the step's own tools: no address-space limit on local
        timeout=timeout,
        labels={"dice.io/pipeline-run": str(run.pk), "dice.io/task": dns_label(task.alias)},
        namespace=job_namespace(run),
        files={spec_path: json.dumps(spec)},  # json.dump never uses the C encoder
        tenant=run.application.project.organization.slug,
        mounts=mounts,
    )
    return executor.run_job(job)


# ---- results and logs ---------------------------------------------------------------------------


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
    status = executor.job_status(task.job_name, job_namespace(run))
    if getattr(executor, "kind", "") == "kubernetes" and status.state in (JobState.SUCCEEDED, JobState.FAILED):
        record_kubernetes_result(executor, run, task, status)
    return status


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


def pump_many(executor: Executor, run: PipelineRun, tasks: list[TaskRun], masker: secrets.Masker) -> None:
    """pump_logs for several steps of the run in one transaction (the steps of a wide stage end
    together: one commit for them all, not one each). When another writer moved one of their
    cursors meanwhile, nothing of it is kept and each is pumped on its own."""
    pending = [(task, fresh) for task in tasks if task.job_name
               for fresh in [_fresh_lines(executor, run, task, masker)] if fresh is not None]
    if not pending:
        return
    try:
        with transaction.atomic():
            for task, (rows, cursor) in pending:
                _move_cursor(task, cursor, len(rows))
            log_services.append_many_task_lines([(task.pk, task.last_line + 1, rows) for task, (rows, _) in pending])
    except _LostRace:
        for task, _ in pending:
            task.refresh_from_db(fields=["log_cursor", "last_line"])
            pump_logs(executor, run, task, masker)
        return
    for task, (rows, cursor) in pending:
        task.log_cursor, task.last_line = cursor, task.last_line + len(rows)


def _fresh_lines(executor: Executor, run: PipelineRun, task: TaskRun, masker: secrets.Masker):
    """The job's lines after the task's cursor as log entries, and the cursor after them; None
    when there are none."""
    fresh = [line for line in executor.job_logs(task.job_name, job_namespace(run)) if line.number > task.log_cursor]
    if not fresh:
        return None
    rows = []
    for line in fresh:
        stamp, stream, text = _parse(line.text, line.timestamp, line.stream)
        stream = stream if stream in LogStream.values else LogStream.STDOUT
        rows.append((stamp, stream, task.attempt, masker(text)))
    return rows, fresh[-1].number


def _move_cursor(task: TaskRun, cursor: int, count: int) -> None:
    """Compare-and-set the task's log cursor and last line number (inside the caller's transaction,
    which stores the lines); _LostRace when another writer moved them first."""
    moved = TaskRun.objects.filter(pk=task.pk, log_cursor=task.log_cursor, last_line=task.last_line).update(
        log_cursor=cursor, last_line=task.last_line + count)
    if not moved:
        raise _LostRace


def _pump_once(executor: Executor, run: PipelineRun, task: TaskRun, masker: secrets.Masker) -> int | None:
    fresh = _fresh_lines(executor, run, task, masker)
    if fresh is None:
        return 0
    rows, cursor = fresh
    try:
        with transaction.atomic():
            _move_cursor(task, cursor, len(rows))
            log_services.append_task_lines(task.pk, task.last_line + 1, rows)
    except _LostRace:
        task.refresh_from_db(fields=["log_cursor", "last_line"])
        return None
    task.log_cursor, task.last_line = cursor, task.last_line + len(rows)
    return len(rows)


class _LostRace(Exception):
    pass


def append_lines(task: TaskRun, texts: list[str], stream: str = LogStream.SYSTEM) -> None:
    """Lines written by the console itself (built-in actions, attempts, results)."""
    if not texts:
        return
    import time

    from django.db.models import F

    with transaction.atomic():
        locked = TaskRun.objects.select_for_update().filter(pk=task.pk)
        current = locked.values_list("last_line", flat=True).first() or 0
        now = time.time()
        log_services.append_task_lines(task.pk, current + 1, [(now, stream, task.attempt, text) for text in texts])
        TaskRun.objects.filter(pk=task.pk).update(last_line=F("last_line") + len(texts))
    task.last_line = current + len(texts)


def finished_job(status: JobStatus) -> bool:
    return status.state.finished or status.state is JobState.MISSING


# ---- steps on Kubernetes ------------------------------------------------------------------------
#
# A step becomes a Job named job_name(run, alias, attempt) in the namespace pipelines-<project>,
# created only if absent, with the agent beside the step so that step images need only /bin/sh:
#
#   initContainer `restore` (agent image): `python -m agent restore` fills the context volume
#       (earlier steps' directories, caches) from the console's context store;
#   initContainer `agent` (restartPolicy: Always, a native sidecar): `python -m agent sidecar`
#       streams the step's output files as numbered JSON lines, collects outputs ($METAFILE and
#       `action meta:` lines), uploads the step's directory and caches to the context store,
#       writes /dice/step/result.json and /dice/step/stored, and reports to the console;
#   container `step` (the action's image, default alpine:3): /bin/sh /dice/spec/run.sh runs the
#       commands with stdout and stderr captured to /dice/step/, waits (bounded) for the sidecar
#       to have stored, and hands the result JSON to Kubernetes as its termination message.
#
# The spec, the generated scripts, the agent's own source (standard library only) and the values
# of env vars that hold secrets live in a Secret `<job>-spec` owned by the Job. The context volume
# is mounted at the same path as the run's directories on the console, so `${{ dirs.x }}` means
# the same inside the pod. The context store (apps/pipelines/context_store.py) is reached at
# DICE_CONSOLE_URL with the run's token, both in step.json: only the agent's containers mount
# step.json, the step container gets run.sh and script.sh. Without DICE_CONSOLE_URL nothing is
# carried between steps (the restore says so in the step's log).
# The console reads a finished Job's result from the step container's
# termination message (record_kubernetes_result); without one (e.g. kwok, which runs nothing)
# the Job's own status and exit code are the result.

STEP_IMAGE = "alpine:3"
GIT_IMAGE = "alpine/git:latest"
SPEC_MOUNT = "/dice/spec"
STEP_MOUNT = "/dice/step"
AGENT_MOUNT = "/dice/agent"
STORED_WAIT = 600  # seconds the step container waits for the sidecar to have stored


def agent_image() -> str:
    return str(getattr(settings, "DICE_PIPELINE_AGENT_IMAGE", "") or os.environ.get("DICE_PIPELINE_AGENT_IMAGE", "")
               or "python:3.11-alpine")


def _q(text: str) -> str:
    """Single-quoted for /bin/sh."""
    return "'" + str(text).replace("'", "'\\''") + "'"


def _k8s_script(spec: dict) -> str:
    """The step's own work as a shell script (what `agent run` would do locally)."""
    if spec.get("type") == "git-checkout":
        params = spec.get("params") or {}
        url = params.get("url") or params.get("uri") or ""
        args = ["git", "-c", "advice.detachedHead=false", "clone", "--quiet"]
        if params.get("depth") and not params.get("commit"):
            args += ["--depth", str(int(params["depth"]))]
        if params.get("branch") and not params.get("commit"):
            args += ["--branch", str(params["branch"])]
        lines = ["set -e", " ".join(_q(a) for a in [*args, "--", url, "."])]
        if params.get("commit"):
            lines.append(f"git -c advice.detachedHead=false checkout --quiet {_q(params['commit'])}")
        lines += ['echo "commit=$(git rev-parse HEAD)" >> "$METAFILE"',
                  'echo "message=$(git log -1 --format=%s)" >> "$METAFILE"',
                  'echo "author=$(git log -1 --format=\'%an <%ae>\')" >> "$METAFILE"']
        return "\n".join(lines) + "\n"
    commands = [c for c in spec.get("commands") or [] if c.strip()]
    return "set -e\n" + "\n".join(commands) + "\n"


def _k8s_run_sh(spec: dict) -> str:
    shell = spec.get("shell") or "/bin/sh"
    return "\n".join([
        "#!/bin/sh",
        "# generated by the console: run the step, leave its exit code for the agent sidecar",
        f'mkdir -p "$WORKDIR" "{STEP_MOUNT}" && cd "$WORKDIR" || exit 1',
        'touch "$METAFILE"',
        f'if [ -f "{STEP_MOUNT}/restore-failed" ]; then code=1  # the agent tells why in the log',
        f'else {_q(shell)} {SPEC_MOUNT}/script.sh >"{STEP_MOUNT}/stdout.log" 2>"{STEP_MOUNT}/stderr.log"',
        "code=$?; fi",
        f'echo "$code" >"{STEP_MOUNT}/exit"',
        "i=0",
        f'while [ ! -f "{STEP_MOUNT}/stored" ] && [ "$i" -lt {STORED_WAIT} ]; do sleep 1; i=$((i+1)); done',
        f'[ -f "{STEP_MOUNT}/result.json" ] && cat "{STEP_MOUNT}/result.json" >/dev/termination-log',
        'exit "$code"',
        "",
    ])


def _pod_spec(spec: dict, context: dict | None = None) -> dict:
    """The step spec as the agent inside the pod sees it: its own files under /dice/step, and
    where the context store is (url, token: masked in every line the agent prints)."""
    pod = {**spec, "metafile": f"{STEP_MOUNT}/metafile", "result": f"{STEP_MOUNT}/result.json",
           "output": {"stdout": f"{STEP_MOUNT}/stdout.log", "stderr": f"{STEP_MOUNT}/stderr.log",
                      "exit": f"{STEP_MOUNT}/exit", "stored": f"{STEP_MOUNT}/stored",
                      "restore_log": f"{STEP_MOUNT}/restore.log", "restore_failed": f"{STEP_MOUNT}/restore-failed"}}
    if context:
        pod["context"] = dict(context)
        pod["mask"] = [*(spec.get("mask") or []), context["token"]]
    return pod


def _agent_sources() -> dict[str, str]:
    root = Path(AGENT_ROOT) / "agent"
    return {f"agent.{path.name}": path.read_text(encoding="utf-8") for path in sorted(root.glob("*.py"))}


def kubernetes_step_objects(run: PipelineRun, task: TaskRun, spec: dict, action: Action) -> tuple[dict, dict]:
    """The Job of a step and the Secret it mounts (see the comment above)."""
    from apps.pipelines.context_store import pod_context
    from scheduler.kubernetes.jobrun import job_manifest

    namespace = job_namespace(run)
    name = dns_label(task.job_name)
    secret_name = f"{name[:58]}-spec"
    masked = set(spec.get("mask") or [])
    env, secret_env = [], {}
    for key, value in {**spec["envs"], "METAFILE": f"{STEP_MOUNT}/metafile", "WORKDIR": spec["workdir"],
                       "PIPELINE_TASK_ALIAS": task.alias, "PIPELINE_TASK_RUN_ID": str(task.pk)}.items():
        if any(secret and secret in str(value) for secret in masked):
            secret_env[f"env.{key}"] = str(value)
            env.append({"name": key, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": f"env.{key}"}}})
        else:
            env.append({"name": key, "value": str(value)})
    image = action.image or (GIT_IMAGE if task.type == "git-checkout" else STEP_IMAGE)
    timeout = spec["timeout"] + TIMEOUT_GRACE if spec["timeout"] else None
    labels = {"dice.io/pipeline-run": str(run.pk), "dice.io/task": dns_label(task.alias),
              "dice.io/attempt": str(task.attempt), "dice.io/task-run": str(task.pk)}
    job = job_manifest(JobSpec(
        name=name, image=image, command=["/bin/sh", f"{SPEC_MOUNT}/run.sh"], workdir=spec["workdir"],
        cpu=action.resources.cpu or 0.1, mem=action.resources.mem or 256, timeout=timeout, labels=labels,
        namespace=namespace, node_selector=step_node_selector(run),
    ), namespace)
    pod = job["spec"]["template"]["spec"]
    step = pod["containers"][0]
    step["name"] = "step"
    step["env"] = env
    if action.resources.max_cpu:
        step["resources"]["limits"]["cpu"] = str(action.resources.max_cpu)
    context_path = str(run_dir(run.pk) / "dirs")
    shared = [{"name": "step", "mountPath": STEP_MOUNT}, {"name": "context", "mountPath": context_path}]
    step["volumeMounts"] = [{"name": "spec", "mountPath": SPEC_MOUNT, "readOnly": True}, *shared]
    step["terminationMessagePolicy"] = "File"
    agent_env = [{"name": "PYTHONPATH", "value": AGENT_MOUNT}, {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}]
    agent_mounts = [{"name": "agent-spec", "mountPath": SPEC_MOUNT, "readOnly": True}, *shared,
                    {"name": "agent", "mountPath": f"{AGENT_MOUNT}/agent", "readOnly": True}]
    small = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
    pod["initContainers"] = [
        {"name": "restore", "image": agent_image(), "env": agent_env, "volumeMounts": agent_mounts,
         "command": ["python3", "-m", "agent", "restore", "--spec", f"{SPEC_MOUNT}/step.json"], "resources": small},
        {"name": "agent", "image": agent_image(), "restartPolicy": "Always", "env": agent_env,
         "volumeMounts": agent_mounts, "resources": small,
         "command": ["python3", "-m", "agent", "sidecar", "--spec", f"{SPEC_MOUNT}/step.json"]},
    ]
    sources = _agent_sources()
    pod["volumes"] = [
        # the step container sees its scripts only; step.json (with the context token) is the agent's
        {"name": "spec", "secret": {"secretName": secret_name, "defaultMode": 0o555, "items": [
            {"key": "run.sh", "path": "run.sh"}, {"key": "script.sh", "path": "script.sh"}]}},
        {"name": "agent-spec", "secret": {"secretName": secret_name, "defaultMode": 0o444, "items": [
            {"key": "step.json", "path": "step.json"}]}},
        {"name": "agent", "secret": {"secretName": secret_name, "defaultMode": 0o444, "items": [
            {"key": key, "path": key.removeprefix("agent.")} for key in sources]}},
        {"name": "step", "emptyDir": {}},
        {"name": "context", "emptyDir": {}},
    ]
    pod["terminationGracePeriodSeconds"] = 60
    # The job's log is the agent's (it numbers and streams the step's output files), not the
    # step container's, whose stdout run.sh sends to those files.
    from scheduler.kubernetes.jobrun import LOG_CONTAINER

    template_meta = job["spec"]["template"].setdefault("metadata", {})
    template_meta.setdefault("annotations", {})[LOG_CONTAINER] = "agent"
    secret = {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": secret_name, "namespace": namespace, "labels": dict(job["metadata"]["labels"])},
        "stringData": {"step.json": json.dumps(_pod_spec(spec, pod_context(run.pk))), "run.sh": _k8s_run_sh(spec),
                       "script.sh": _k8s_script(spec), **sources, **secret_env},
    }
    return job, secret


def launch_kubernetes(executor, run: PipelineRun, task: TaskRun, spec: dict, action: Action) -> JobStatus:
    """Create the step's namespace, Job and Secret, each only if absent; then read the Job."""
    from kubernetes.client.rest import ApiException

    from scheduler.base import ExecutorError
    from scheduler.kubernetes.meta import FIELD_MANAGER

    job, secret = kubernetes_step_objects(run, task, spec, action)
    namespace = job["metadata"]["namespace"]
    core, batch = executor.core, executor.batch

    def create(fn, *args):
        try:
            return fn(*args, field_manager=FIELD_MANAGER)
        except ApiException as exc:
            if exc.status != 409:  # it exists already: the point of deterministic names
                raise ExecutorError(f"creating {args[-1]['kind']} {args[-1]['metadata'].get('name')}: "
                                    f"{exc.reason} {exc.body or ''}".strip()) from None
            return None

    create(core.create_namespace, {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": namespace, "labels": {"app.kubernetes.io/managed-by": "dice", "dice.io/pipelines": "true"}}})
    created = create(batch.create_namespaced_job, namespace, job)
    uid = created.metadata.uid if created is not None else batch.read_namespaced_job(
        job["metadata"]["name"], namespace).metadata.uid
    secret["metadata"]["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"],
                                              "uid": uid, "blockOwnerDeletion": False}]
    create(core.create_namespaced_secret, namespace, secret)
    return executor.job_status(task.job_name, namespace)


def record_kubernetes_result(executor, run: PipelineRun, task: TaskRun, status: JobStatus) -> dict | None:
    """Write result.json for a finished Kubernetes step, once: the step container's termination
    message when the agent left one, else what the Job says (exit code, deadline)."""
    path = step_dir(task) / "result.json"
    if path.exists():
        return read_result(task)
    result = None
    try:
        pods = executor.core.list_namespaced_pod(
            job_namespace(run), label_selector=f"batch.kubernetes.io/job-name={dns_label(task.job_name)}").items
    except Exception:
        pods = []
    for pod in pods:
        for container in (pod.status.container_statuses if pod.status else None) or []:
            term = container.state.terminated if container.state else None
            if container.name == "step" and term is not None and (term.message or "").startswith("{"):
                try:
                    result = json.loads(term.message)
                except ValueError:
                    result = None
    if result is None:
        timed_out = "deadline" in (status.message or "").lower()
        code = status.exit_code if status.exit_code is not None else (0 if status.state is JobState.SUCCEEDED else 1)
        if status.state is JobState.FAILED and code == 0:
            code = 124 if timed_out else 1
        result = {"exit_code": code, "outputs": {}, "started": status.started, "finished": status.finished,
                  "timed_out": timed_out, "caches": [], "lines": 0,
                  "error": "" if code == 0 else (status.message or f"job {status.state}")}
    result.setdefault("lines", 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".result.json.tmp")
    tmp.write_text(json.dumps(result))
    os.replace(tmp, path)
    return result
