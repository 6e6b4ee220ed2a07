"""The pipeline engine: plans runs, dispatches ready tasks the moment their dependencies finish,
collects finished steps, retries, skips, cancels, and re-adopts running work after a restart.

Every function takes ids or re-reads its rows and is idempotent: moves are compare-and-set
(states.py), jobs have deterministic names and are created only if absent.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.deploy import deployments
from apps.pipelines import (
    builtin,
    expressions,
    notify,
    paths,
    queue,
    reference,
    secrets,
    states,
    steplogs,
    steps,
)
from apps.pipelines.attempts import conclude
from apps.pipelines.checkout import checkout_defaults
from apps.pipelines.choices import (
    BLOCKING_TASK,
    FINISHED_TASK,
    Executor,
    RunStatus,
    TaskStatus,
)
from apps.pipelines.models import CacheEntry, PipelineRun, TaskRun
from pipelineyml import PipelineYml, plan
from scheduler.base import ExecutorError, JobState
from scheduler.registry import executor_for

log = logging.getLogger(__name__)

# Built-in actions that need the console itself run inside the Celery worker, not as cluster jobs.
WORKER_ACTIONS = frozenset({"release", "dice", "manual-review", "wait", "echo", "cluster-inspect", "snippet",
                            "image-build"})


def max_runs_per_project() -> int:
    return int(getattr(settings, "DICE_PIPELINE_MAX_RUNS_PER_PROJECT", 5))


def max_parallel_steps() -> int:
    return int(getattr(settings, "DICE_PIPELINE_MAX_PARALLEL_STEPS", 200))


def _utc(stamp: float | None) -> dt.datetime:
    return dt.datetime.fromtimestamp(stamp, tz=dt.UTC) if stamp else timezone.now()


# ---- planning and starting ------------------------------------------------------------------


def create_tasks(run: PipelineRun, pipeline: PipelineYml) -> list[TaskRun]:
    rows = [
        TaskRun(
            run=run, alias=task.alias, type=task.type, stage=task.stage, position=i, needs=list(task.needs),
            executor=Executor.WORKER if task.type in WORKER_ACTIONS else Executor.CLUSTER,
            max_attempts=task.action.retry.max + 1 if task.action else 1,
        )
        for i, task in enumerate(plan(pipeline))
    ]
    return TaskRun.objects.bulk_create(rows, batch_size=500)


def start_queued_runs(project_id: int) -> list[int]:
    """Start the project's oldest queued runs while it has fewer running than the limit."""
    from apps.projects.models import Project

    with transaction.atomic():
        # Serialises the starters of one project (PostgreSQL row lock; SQLite's IMMEDIATE
        # transactions serialise every writer anyway).
        list(Project.objects.select_for_update().filter(pk=project_id).values_list("pk"))
        runs = PipelineRun.objects.filter(application__project_id=project_id)
        free = max_runs_per_project() - runs.filter(status=RunStatus.RUNNING).count()
        started = []
        if free > 0:
            for run in runs.filter(status=RunStatus.QUEUED).order_by("created", "id")[:free]:
                if states.move_run(run, RunStatus.RUNNING, "started"):
                    started.append(run.pk)
    # The runs are running now (committed): a dispatch that fails here must not go back to the
    # caller, whose retry would find no queued run and leave this one running with nothing
    # started. Each failed dispatch is handed to the retried dispatch_run task instead.
    for run_id in started:
        try:
            dispatch(run_id)
        except Exception:
            log.warning("dispatching run %s after starting it failed; retrying in a task", run_id, exc_info=True)
            queue.send("dispatch_run", run_id)
    return started


# ---- dispatch ------------------------------------------------------------------------------


class _Row:
    """What dispatch needs of a task run; states.move_task(s) accept it like a TaskRun."""

    STATIC = ("id", "alias", "needs", "executor")  # fixed when the run is planned
    DYNAMIC = ("id", "status", "attempt", "not_before", "upstream_blocked")
    __slots__ = ("run_id", "id", "alias", "needs", "executor", "status", "attempt", "not_before",
                 "upstream_blocked", "reason", "finished")

    def __init__(self, run_id, static, status, attempt, not_before, upstream_blocked):
        self.run_id, (self.id, self.alias, self.needs, self.executor) = run_id, static
        self.status, self.attempt, self.not_before, self.upstream_blocked = status, attempt, not_before, upstream_blocked

    @property
    def pk(self) -> int:
        return self.id


# Per run: each task's id, alias, needs and executor, which never change once planned. A wide
# stage's tasks each need the whole previous stage: decoding 1,000 JSON lists of 100 aliases at
# every dispatch cost more than the rest of it. Equal needs share one tuple of shared strings.
# Keyed by the run's id and creation time: a test database that reuses ids holds another run.
_STATIC: dict[tuple, dict[int, tuple]] = {}
_STATIC_LOCK = threading.Lock()
_STATIC_RUNS = 32


def _static(run: PipelineRun, ids) -> dict[int, tuple]:
    key = (run.pk, run.created)
    with _STATIC_LOCK:
        known = _STATIC.get(key)
    if known is not None and all(pk in known for pk in ids):
        return known
    aliases: dict[str, str] = {}
    shared: dict[tuple, tuple] = {}
    known = {}
    for pk, alias, needs, executor in TaskRun.objects.filter(run_id=run.pk).values_list(*_Row.STATIC):
        alias = aliases.setdefault(alias, alias)
        needs = tuple(aliases.setdefault(a, a) for a in needs or ())
        known[pk] = (pk, alias, shared.setdefault(needs, needs), executor)
    with _STATIC_LOCK:
        if len(_STATIC) >= _STATIC_RUNS:
            _STATIC.pop(next(iter(_STATIC)))
        _STATIC[key] = known
    return known


def _dynamic(run_id: int) -> list[tuple]:
    """_Row.DYNAMIC of each task of the run, in order: as SQL (compiling the queryset cost more
    than running it, at every dispatch), converted as the ORM would."""
    meta, quote = TaskRun._meta, connection.ops.quote_name
    columns = ", ".join(quote(meta.get_field(name).column) for name in _Row.DYNAMIC)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {quote(meta.db_table)} WHERE {quote(meta.get_field('run').column)} = %s "
                       f"ORDER BY {quote(meta.get_field('position').column)}", [run_id])
        rows = cursor.fetchall()
    found = []
    for pk, status, attempt, not_before, blocked in rows:
        if isinstance(not_before, str):  # SQLite keeps text
            not_before = parse_datetime(not_before)
        if not_before is not None and timezone.is_naive(not_before):
            not_before = timezone.make_aware(not_before, connection.timezone)
        found.append((pk, status, attempt, not_before, bool(blocked)))
    return found


def _rows(run: PipelineRun) -> list[_Row]:
    """The run's tasks as plain rows, not model instances: a 1,000-task run is read at every
    dispatch, and only the columns that change are read each time."""
    dynamic = _dynamic(run.pk)
    static = _static(run, [values[0] for values in dynamic])
    return [_Row(run.pk, static[pk], *rest) for pk, *rest in dynamic]


class _RoundCache(threading.local):
    """What one collector round (its collection, the dispatch it leads to and the starts of the
    claimed steps) reads once: each run (then only its status again), the cluster and executor of
    each run, and its project's configs.
    Read at the round's start as they would be at each use milliseconds later; gone when the
    round ends (a Celery task outside a round reads them itself)."""

    values: dict | None = None


_ROUND = _RoundCache()


def _round_cache(name: str) -> dict:
    """The current round's cache of `name` (a fresh dict, kept nowhere, outside a round)."""
    values = _ROUND.values
    return {} if values is None else values.setdefault(name, {})


def _run_cluster(run: PipelineRun) -> tuple:
    """(executor, cluster name) of the run's cluster, read once per round."""
    clusters = _round_cache("clusters")
    if run.pk not in clusters:
        executor, ref = steps.executor_and_cluster(run)
        clusters[run.pk] = executor, ref.name
    return clusters[run.pk]


def _task_executor(run: PipelineRun, task_type: str, cache: dict):
    """steps.task_executor, with the run's own cluster read once per round."""
    if steps.DATA_ACTIONS.get(task_type, "") or (run.pk, "") in cache:
        return steps.task_executor(run, task_type, cache)
    cache[run.pk, ""] = _run_cluster(run)[0]
    return cache[run.pk, ""]


def _project_configs(project_id: int) -> tuple:
    """reference.project_configs, read once per round."""
    configs = _round_cache("configs")
    if project_id not in configs:
        configs[project_id] = reference.project_configs(project_id)
    return configs[project_id]


def start_batch() -> int:
    return max(1, int(getattr(settings, "DICE_PIPELINE_START_BATCH", 100)))


class _Rounds:
    """Work on a key done by one thread of this process at a time. A caller that arrives while
    another thread works on its key hands its items over and returns at once; the working thread
    goes round again with them, after its own round, so they are served once their callers'
    changes are committed. When a round fails, the items handed over are passed to `requeue`
    (a message), not lost with it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict = {}  # key being worked on -> items handed over for its next round

    def offer(self, key, items) -> bool:
        """Hand the items to the thread working on `key`; False when none is."""
        with self._lock:
            if key not in self._pending:
                return False
            self._pending[key].update(items)
            return True

    def busy(self, key) -> bool:
        with self._lock:
            return key in self._pending

    def run(self, key, items, work, requeue) -> list:
        """work(items) for each round this thread does; [] when the items were handed over."""
        with self._lock:
            if key in self._pending:
                self._pending[key].update(items)
                return []
            self._pending[key] = set()
        results, todo = [], sorted(items)
        try:
            while True:
                results.append(work(todo))
                with self._lock:
                    if not self._pending[key]:
                        del self._pending[key]
                        return results
                    todo, self._pending[key] = sorted(self._pending[key]), set()
        except BaseException:
            with self._lock:
                left = sorted(self._pending.pop(key, ()))
            if left:
                requeue(left)
            raise


# A run is dispatched by one thread at a time. When a wide stage ends, its last steps were
# collected by several worker threads at once; each read and judged the whole run while the
# others did the same, fighting for the interpreter lock.
_DISPATCHES = _Rounds()


def dispatch(run_id: int) -> list[int]:
    """Dispatch the run (see _dispatch), by one thread at a time in this process (_Rounds): a
    request arriving meanwhile is served by another round of the dispatch under way. A caller
    inside a transaction is served at once (its changes are not visible to the others)."""
    if connection.in_atomic_block:
        return _dispatch(run_id)
    rounds = _DISPATCHES.run(run_id, {run_id}, lambda _: _dispatch(run_id),
                             lambda _: queue.send("dispatch_run", run_id))
    return [task_id for claimed in rounds for task_id in claimed]


# The runs being worked on, each with its application, project and organization as the ORM made
# them, beside the joined row they were made from. A step's end and its successor's start each
# read the run so: compiling that four-table queryset and making its four objects cost more than
# the rest of a collection. The row is still read each time (one SQL statement, every column of
# the four tables); the objects are made again when any value differs.
_RUNS: dict[int, tuple[tuple, PipelineRun]] = {}
_RUNS_KEPT = 64
_RUN_OWNERS = ("application", "project", "organization")


def _run_row(run_id: int) -> tuple | None:
    """Every column of the run, its application, project and organization, as stored."""
    quote = connection.ops.quote_name
    metas, joins = [PipelineRun._meta], []
    for name in _RUN_OWNERS:
        field = metas[-1].get_field(name)
        target = field.related_model._meta
        joins.append(f"JOIN {quote(target.db_table)} t{len(metas)} "
                     f"ON t{len(metas)}.{quote(target.pk.column)} = t{len(metas) - 1}.{quote(field.column)}")
        metas.append(target)
    columns = ", ".join(f"t{i}.{quote(f.column)}" for i, meta in enumerate(metas) for f in meta.concrete_fields)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {quote(PipelineRun._meta.db_table)} t0 {' '.join(joins)} "
                       f"WHERE t0.{quote(PipelineRun._meta.pk.column)} = %s", [run_id])
        return cursor.fetchone()


def _task_runs(where: dict[str, object], ids: list[int], *, without: tuple[str, ...] = ()) -> list[TaskRun]:
    """The task runs with these ids whose columns hold these values, in plan order, as the ORM
    makes them (RawQuerySet: the same conversions, no queryset compiled); `without` columns are
    deferred, read when first used."""
    meta, quote = TaskRun._meta, connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in meta.concrete_fields if f.name not in without)
    conditions = [f"{quote(meta.get_field(name).column)} = %s" for name in where]
    sql = (f"SELECT {columns} FROM {quote(meta.db_table)} WHERE {quote(meta.pk.column)} IN "
           f"({', '.join(['%s'] * len(ids))})" + "".join(f" AND {c}" for c in conditions)
           + f" ORDER BY {quote(meta.get_field('position').column)}")
    return list(TaskRun.objects.raw(sql, [*ids, *where.values()])) if ids else []


def _current_run(run_id: int) -> PipelineRun | None:
    """The run with its application, project and organization, as the ORM would read them now
    (select_related), made from the objects kept for the same row when it has not changed. Each
    caller gets its own copy of the run (its status is set by the moves)."""
    this_round = _round_cache("runs")
    if run_id in this_round:  # read moments ago in this round: only the status may have moved
        meta, quote = PipelineRun._meta, connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {quote(meta.get_field('status').column)} FROM {quote(meta.db_table)} "
                           f"WHERE {quote(meta.pk.column)} = %s", [run_id])
            status = cursor.fetchone()
        if status is None:
            return None
        run = copy.copy(this_round[run_id])
        run.status = status[0]
        return run
    row = _run_row(run_id)
    if row is None:
        return None
    known = _RUNS.get(run_id)
    if known is None or known[0] != row:
        run = PipelineRun.objects.select_related("application__project__organization").filter(pk=run_id).first()
        if run is None:
            return None
        known = row, run
        with _STATIC_LOCK:
            if len(_RUNS) >= _RUNS_KEPT:
                _RUNS.pop(next(iter(_RUNS)), None)
            _RUNS[run_id] = known
    this_round[run_id] = known[1]
    return copy.copy(known[1])


def _dispatch(run_id: int) -> list[int]:
    """Skip what can no longer run, claim every ready task (dependencies finished, backoff over,
    a slot free) in one transaction and start them; finish the run when nothing is left. Returns
    the ids claimed.

    Claimed cluster steps start in batches of DICE_PIPELINE_START_BATCH: the first batch right
    here (no hop through the broker), the others as start_tasks messages for other workers."""
    run = _current_run(run_id)
    if run is None or run.status != RunStatus.RUNNING:
        return []
    rows = _rows(run)
    by_alias = {task.alias: task for task in rows}
    slots = max_parallel_steps() - sum(task.status == TaskStatus.RUNNING for task in rows)
    now = timezone.now()
    ready: dict[int, _Row] = {}
    changed = True
    while changed:
        changed = False
        verdicts: dict[int, tuple] = {}  # per needs tuple (shared by a stage): (all finished, blocked by)
        for task in rows:
            if task.status != TaskStatus.QUEUED or task.pk in ready:
                continue
            verdict = verdicts.get(id(task.needs))
            if verdict is None:
                deps = [by_alias[alias] for alias in task.needs if alias in by_alias]
                done = all(dep.status in FINISHED_TASK for dep in deps)
                blocking = next((d for d in deps if d.status in BLOCKING_TASK
                                 or (d.status == TaskStatus.SKIPPED and d.upstream_blocked)), None) if done else None
                verdict = verdicts[id(task.needs)] = (done, blocking)
            done, blocked = verdict
            if not done:
                continue
            if blocked is not None:
                reason = f"dependency '{blocked.alias}' {blocked.status}"
                if blocked.status == TaskStatus.SKIPPED:
                    reason = f"dependency '{blocked.alias}' was skipped because its own dependency failed"
                changed |= states.move_task(task, TaskStatus.SKIPPED, reason, upstream_blocked=True)
                continue
            if task.not_before and task.not_before > now or slots <= 0:
                continue
            ready[task.pk] = task
            slots -= 1
    claimed = states.move_tasks(list(ready.values()), TaskStatus.RUNNING,
                                lambda task: f"attempt {task.attempt}: dependencies done")
    steps_to_start = []
    for task in claimed:
        if task.executor == Executor.WORKER:
            queue.send("run_task", task.pk)
        else:
            steps_to_start.append(task.pk)
    size = start_batch()
    batches = [steps_to_start[i:i + size] for i in range(0, len(steps_to_start), size)]
    for batch in batches[1:]:
        queue.send("start_tasks", run_id, batch)
    if batches:
        try:
            start_tasks(run_id, batches[0], run=run)
        except Exception:  # the claims are committed: a retry of our caller would not start them
            log.warning("starting tasks %s of run %s here failed; retrying in a task", batches[0], run_id,
                        exc_info=True)
            queue.send("start_tasks", run_id, batches[0])
    # Whether the run is over is read again, after this dispatch's own moves were committed: two
    # dispatches at once (one skipping the last queued tasks, one concluding the last running
    # task) each saw the other's task unfinished in the rows they read first, and neither
    # finished the run. Whichever reads last now sees both. (EXISTS stops at the first one.)
    # A dispatch that claimed tasks has left them running (one that ended at its start asked
    # for another round, which reads this again): the run is not over.
    if not claimed and not TaskRun.objects.filter(run_id=run_id).exclude(status__in=FINISHED_TASK).exists():
        finish_run(run, _rows(run))
    return [task.pk for task in claimed]


def finish_run(run: PipelineRun, rows: list[TaskRun]) -> None:
    bad = next((t for t in rows if t.status in (TaskStatus.FAILED, TaskStatus.TIMED_OUT)), None)
    if bad is not None:
        moved = states.move_run(run, RunStatus.FAILED, f"task '{bad.alias}' {bad.status}")
    elif any(t.status == TaskStatus.CANCELLED for t in rows):
        moved = states.move_run(run, RunStatus.CANCELLED, "a task was cancelled")
    else:
        moved = states.move_run(run, RunStatus.SUCCESS, "every task succeeded or was skipped")
    if moved:
        _start_next(run.application.project_id)


def _start_next(project_id: int) -> None:
    """A run of the project ended: start its queued runs. Done inline, and when that fails (a busy
    database) handed to the retried `start_runs` task: the run has already moved, so a retry of
    the caller would find nothing to do and the queued run would wait for the reconciler."""
    try:
        start_queued_runs(project_id)
    except Exception:
        log.warning("starting the queued runs of project %s failed; retrying in a task", project_id, exc_info=True)
        queue.send("start_runs", project_id)


# ---- one task -------------------------------------------------------------------------------


def start_task(task_id: int) -> None:
    """Run one claimed task (see start_tasks)."""
    task = TaskRun.objects.filter(pk=task_id).only("run_id").first()
    if task is not None:
        start_tasks(task.run_id, [task_id])


class _Batch:
    """What the tasks of one run being started together share: the parsed pipeline, the reference
    context (one query for every output), the secrets, the cluster and its executor."""

    def __init__(self, run: PipelineRun, aliases: list[str]) -> None:
        self.run = run
        self.pipeline = reference.pipeline_of(run)
        self.ctx, self.masker = reference.context_for(run, self.pipeline, aliases,
                                                      _project_configs(run.application.project_id))
        self._executor = None

    def executor(self, task_type: str = ""):
        """(executor, cluster name) a step of the type runs on: the run's cluster, or for a data
        action (steps.DATA_ACTIONS) the workspace's data cluster."""
        engine = steps.DATA_ACTIONS.get(task_type, "")
        if engine:
            ref = steps.data_cluster_of(self.run, engine)
            return executor_for(ref), ref.name
        if self._executor is None:
            self._executor = _run_cluster(self.run)
        return self._executor


def start_tasks(run_id: int, task_ids: list[int], run: PipelineRun | None = None) -> None:
    """Run claimed tasks of one run: evaluate `if`, resolve params, then start each step on the
    cluster (or the built-in action in the worker). Safe to repeat: a job is created only if
    absent. The run is dispatched again afterwards only if a task ended here (skipped, failed).
    `run`: the run with its application, project and organization, as the dispatch that claimed
    them just read it running."""
    if run is None:
        run = PipelineRun.objects.select_related("application__project__organization").filter(pk=run_id).first()
    if run is None or run.status != RunStatus.RUNNING:
        return
    todo = _task_runs({"run": run_id, "status": TaskStatus.RUNNING}, list(task_ids),
                      without=("needs", "params", "outputs"))
    if not todo:
        return
    static = _static(run, [task.pk for task in todo])
    for task in todo:
        task.needs = static[task.pk][2]  # decoded once per run (a wide stage's: 100 aliases each)
    batch = _Batch(run, [task.alias for task in todo])
    launches: list[tuple[TaskRun, object, dict]] = []
    ended = False
    for task in todo:
        task.run = run
        prepared = _prepare(task, batch)
        if prepared is None:
            ended = True
        elif task.executor == Executor.WORKER:
            ended |= builtin.start(task, run, prepared[0], prepared[1], batch.ctx, batch.masker)
        else:
            launches.append((task, *prepared))
    if launches:
        ended |= _launch(batch, launches)
    if ended:
        dispatch(run.pk)


def _prepare(task: TaskRun, batch: _Batch):
    """(action, params) of a task about to start, or None when it ended here (disabled, `if`
    false, references that do not resolve)."""
    action = batch.pipeline.action(task.alias)
    if action.disable:
        states.move_task(task, TaskStatus.SKIPPED, "disabled")
        return None
    try:
        if action.condition and not expressions.evaluate(action.condition, batch.ctx):
            states.move_task(task, TaskStatus.SKIPPED, f"if: {action.condition} is false")
            return None
        params = expressions.substitute_value(dict(action.params), batch.ctx)
        if task.type == "git-checkout":
            params = checkout_defaults(params, batch.run.trigger_payload or {}, batch.run.pk)
            if params.get("password") and params["password"] not in batch.masker.secrets:
                batch.masker = secrets.Masker([*batch.masker.secrets, params["password"]])
        return action, params
    except expressions.ResolveError as exc:
        conclude(task, TaskStatus.FAILED, f"cannot resolve references: {exc}", retry=False)
        return None


_LAUNCHER: ThreadPoolExecutor | None = None
_LAUNCHER_LOCK = threading.Lock()


def _launcher() -> ThreadPoolExecutor:
    """Threads that submit steps to a remote cluster (Kubernetes): a job start there is mostly
    waiting for API calls, so a wide stage's starts overlap instead of queueing."""
    global _LAUNCHER
    with _LAUNCHER_LOCK:
        if _LAUNCHER is None:
            workers = max(1, int(getattr(settings, "DICE_PIPELINE_LAUNCH_THREADS", 8)))
            _LAUNCHER = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dice-step-launch")
        return _LAUNCHER


def _launch(batch: _Batch, launches: list) -> bool:
    """Submit the steps' jobs to the run's cluster. Job names are stored first (one statement),
    so a step that finishes at once is collected, and a worker that dies before its launches ran
    leaves tasks the reconciler relaunches (job missing). Each task's `started` is the moment its
    job was submitted. True when a step ended here (no cluster).

    Where accepting a job is an entry in the cluster's memory (capabilities.in_memory_jobs: the
    local kind's starter threads place the spec and fork the process), it is done here, each
    step's spec built just before its job is accepted, and no handoff to another thread is paid
    (a launcher thread waited for the interpreter lock behind this one). Elsewhere (Kubernetes)
    each job is an API call: launcher threads submit them in parallel while the worker goes back
    to collecting."""
    run = batch.run
    targets: dict[str, tuple] = {}  # task type -> (executor, cluster name)
    ended = False
    placed = []
    for task, action, params in launches:
        try:
            if task.type not in targets:
                targets[task.type] = batch.executor(task.type)
        except Exception as exc:
            conclude(task, TaskStatus.FAILED, f"no cluster for workspace {run.workspace}: {exc}", retry=False)
            ended = True
            continue
        if task.type == "spark":  # its driver and executors count against the workspace's quota
            try:
                deployments.check_spark_step_quota(run.application.project_id, run.workspace, targets[task.type][1],
                                                   params, f"step {task.alias}")
            except ValidationError as exc:
                conclude(task, TaskStatus.FAILED, "; ".join(exc.messages), retry=False)
                ended = True
                continue
        placed.append((task, action, params))
    if not placed:
        return True
    launches = placed
    named = {}
    for task, _, params in launches:
        expected = paths.job_name(run.pk, task.alias, task.attempt)
        if task.job_name != expected:
            named[task] = {"job_name": expected, "params": batch.masker.value(params),
                           "cluster": targets[task.type][1]}
    states.update_each(named)
    for task, fields in named.items():
        task.job_name = fields["job_name"]
    address = notify.address()
    notify.watch(0)

    def spec_of(task, action, params):
        return lambda: steps.step_spec(task, run, action, batch.pipeline, batch.ctx, batch.masker, params, address)

    for executor, _ in {id(t[0]): t for t in targets.values()}.values():
        mine = [(task, action, params) for task, action, params in launches if targets[task.type][0] is executor]
        if executor.capabilities.in_memory_jobs:
            _launch_all(executor, run, [(task, action, spec_of(task, action, params))
                                        for task, action, params in mine], in_worker=True)
        else:
            for task, action, params in mine:
                spec = spec_of(task, action, params)()
                _launcher().submit(_launch_all, executor, run, [(task, action, lambda spec=spec: spec)])
    return ended


def _launch_all(executor, run: PipelineRun, items: list, in_worker: bool = False) -> None:
    """Submit the steps' jobs ((task, action, spec function) each), then record when each started
    (or why not). Failures are logged: the reconciler relaunches what did not start."""
    try:
        started: list[tuple[TaskRun, dt.datetime]] = []
        failed = False
        with executor.job_batch():  # local: the whole batch, then the forks
            for task, action, spec in items:
                if steps.read_result(task) is not None:
                    # It ran: a start delivered again after its job's record was lost (a worker
                    # killed between the fork and the record). Collected, never run twice.
                    queue.send("on_task_finished", task.pk)
                    continue
                try:
                    steps.launch(executor, run, task, spec(), action)
                except ExecutorError as exc:
                    failed |= conclude(task, TaskStatus.FAILED, f"the step could not start: {exc}")
                    continue
                if task.started is None:
                    started.append((task, timezone.now()))
        states.update_each({task: {"started": stamp} for task, stamp in started}, unset="started")
        if failed:
            dispatch(run.pk)
    except Exception:
        log.exception("launching tasks of run %s failed; the reconciler retries them", run.pk)
    finally:
        if not in_worker:
            connection.close()  # launcher threads idle between bursts: hold no database session


def collect(task_id: int) -> None:
    collect_many([task_id])


# One thread at a time collects (_Rounds, one key for the process): the steps of a wide stage
# end within milliseconds of each other, and eight worker threads collecting at once mostly
# waited for each other (on SQLite, in its busy handler's sleeps of up to 100 ms).
_COLLECTOR = _Rounds()


def offer_to_collector(task_ids: list[int]) -> bool:
    """Hand finished steps straight to this process's collector if one is collecting (they join
    its next round, no trip through the broker); False when none is, and the caller collects them."""
    return _COLLECTOR.offer(None, task_ids)


def collect_many(task_ids: list[int]) -> bool:
    """Steps may have finished: collect them (see _collect_many), in this thread or, when another
    thread is collecting, in that one's next round. A caller inside a transaction collects here.
    True when a round here dispatched a run (what ended may have let others start)."""
    if connection.in_atomic_block:
        return _collect_round(task_ids)
    rounds = _COLLECTOR.run(None, task_ids, _collect_round, lambda left: queue.send("on_tasks_finished", left))
    return any(rounds)


def _collect_round(task_ids: list[int]) -> bool:
    """_collect_many as one round: what it and the dispatch and starts it leads to read of the
    runs' clusters and configs is read once (_RoundCache)."""
    if _ROUND.values is not None:  # a round within a round (a start that collected): the outer one's
        return _collect_many(task_ids)
    _ROUND.values = {}
    try:
        return _collect_many(task_ids)
    finally:
        _ROUND.values = None


def _collect_many(task_ids: list[int]) -> bool:
    """Read each step's result (or its job's status) and persist the rest of its log; conclude
    them together (one transaction for the final ones, retries one by one); then dispatch each
    of their runs once (unless nothing could advance: _may_advance). True when a run was
    dispatched."""
    dispatched = False
    tasks = _task_runs({}, sorted(set(task_ids)))
    by_run: dict[int, list[TaskRun]] = {}
    for task in tasks:
        by_run.setdefault(task.run_id, []).append(task)
    for run_id, run_tasks in by_run.items():
        run = _current_run(run_id)
        if run is None:
            continue
        shared: dict = {}
        ends = []
        for task in run_tasks:
            task.run = run
            if task.status == TaskStatus.RUNNING and task.executor == Executor.CLUSTER and task.job_name:
                try:
                    end = _collect_step(task, run, shared)
                except ExecutorError as exc:
                    log.warning("collecting task %s of run %s: %s", task.alias, run.pk, exc)
                    continue
                if end is not None:
                    ends.append(end)
        # The last lines and the final moves in one transaction (one commit, not two). A retry is
        # concluded after it: it sends its delayed dispatch, which must not run before a commit.
        final, retries = [], []
        with transaction.atomic():
            ends = _pump_ends(run, ends, shared)
            for task, status, reason, fields in ends:
                if status in (TaskStatus.FAILED, TaskStatus.TIMED_OUT) and task.attempt < task.max_attempts:
                    retries.append((task, status, reason, fields))
                else:
                    fields = {k: v for k, v in fields.items() if v is not None or k == "exit_code"}
                    final.append((task, status, reason, fields))
            moved = states.finish_tasks(final)
        for task, status, reason, fields in retries:
            conclude(task, status, reason, **fields)  # back to queued, after its backoff
        if len(moved) < len(final) or len(moved) < len(ends) or _may_advance(run, moved):
            dispatch(run.pk)
            dispatched = True
    return dispatched


def _pump_ends(run: PipelineRun, ends: list, shared: dict) -> list:
    """Persist the rest of the logs of the steps that ended (one transaction for them all), before
    they are concluded; those whose log cannot be read now are left for a later round."""
    if not ends:
        return ends
    masker = shared["masker"]
    groups: dict[int, tuple] = {}  # the steps of each cluster (a data action's is a data cluster)
    for end in ends:
        executor = _task_executor(run, end[0].type, shared.setdefault("executors", {}))
        groups.setdefault(id(executor), (executor, []))[1].append(end)
    kept = []
    for executor, group in groups.values():
        try:
            steplogs.pump_many(executor, run, [end[0] for end in group], masker)
            kept += group
        except ExecutorError:
            for end in group:
                try:
                    steplogs.pump_logs(executor, run, end[0], masker)
                    kept.append(end)
                except ExecutorError as exc:
                    log.warning("collecting task %s of run %s: %s", end[0].alias, run.pk, exc)
    return kept


def _may_advance(run: PipelineRun, concluded: list[TaskRun]) -> bool:
    """Whether dispatching the run after these tasks ended could do anything. False only when
    each ended with success, each task that needs one of them still needs another unfinished task
    (or none needs them and the run still has unfinished tasks: its end is not yet),
    and the run was below its parallel-step limit (nobody waits for a slot): then the whole read
    and judgment of the run (a 1,000-task run's rows) is skipped. When a wide stage ends, all but
    its last steps are collected so. Safe against collectors elsewhere: each checks after its own
    commit, so the one concluding the last unfinished need sees them all finished."""
    if not concluded or any(task.status != TaskStatus.SUCCESS for task in concluded):
        return True
    ended = {task.alias for task in concluded}
    waiting = {needs for _, _, needs, _ in _static(run, [task.pk for task in concluded]).values()
               if not ended.isdisjoint(needs)}
    if any(ended.issuperset(needs) for needs in waiting):
        return True  # a task needs only these: it is ready (a chain's next step), nothing to count
    running = TaskRun.objects.filter(run_id=run.pk, status=TaskStatus.RUNNING).count()
    if running + len(concluded) >= max_parallel_steps():
        return True
    unfinished = TaskRun.objects.filter(run_id=run.pk).exclude(status__in=FINISHED_TASK)
    if not waiting:  # nothing needs them (the last stage's steps): the run is over once nothing is left
        return not unfinished.exists()
    return any(not unfinished.filter(alias__in=needs).exists() for needs in waiting)


# The project secrets the collector masks a run's logs with (keyed by the run's id and creation
# time: a test database reuses ids), kept RECENT seconds: the rounds of a stage's end come
# milliseconds apart, and each read and decrypted them again. A secret added mid-run is masked
# RECENT seconds later here (the agent masks what the step prints with those of its own start).
RECENT = 2.0
_RECENT: dict[tuple, tuple[float, object]] = {}


def _recent(key: tuple, make):
    now = time.monotonic()
    found = _RECENT.get(key)
    if found is not None and now - found[0] < RECENT:
        return found[1]
    if len(_RECENT) > 256:
        _RECENT.clear()
    value = make()
    _RECENT[key] = (now, value)
    return value


def _collect_step(task: TaskRun, run: PipelineRun, shared: dict):
    """How the step ended, (task, status, reason, fields for conclude), once its log is all there
    to persist (_pump_ends); None while it runs."""
    executor = _task_executor(run, task.type, shared.setdefault("executors", {}))
    result = steps.read_result(task)
    status = None
    if result is None:
        status = steps.job_state(executor, run, task)
        if not status.state.finished:
            return None
        result = steps.read_result(task)  # written just before the process ended?
    if "masker" not in shared:
        shared["masker"] = _recent(("masker", run.pk, run.created),
                                   lambda: _project_configs(run.application.project_id)[1])
    masker = shared["masker"]
    if result is not None:
        _wait_for_lines(executor, run, task, int(result.get("lines") or 0))
        code = int(result.get("exit_code", 1))
        fields = {"outputs": {str(k): masker(str(v)) for k, v in (result.get("outputs") or {}).items()},
                  "exit_code": code, "finished": _utc(result.get("finished"))}
        if code == 0:
            _record_caches(task, run, result.get("caches") or [])
            return task, TaskStatus.SUCCESS, "exit code 0", fields
        if result.get("timed_out"):
            timeout = reference.pipeline_of(run).action(task.alias).timeout
            return task, TaskStatus.TIMED_OUT, f"timed out after {timeout}s", fields
        return task, TaskStatus.FAILED, result.get("error") or f"exit code {code}", fields
    fields = {"outputs": None, "exit_code": status.exit_code, "finished": _utc(status.finished)}
    if status.state is JobState.CANCELLED:
        return task, TaskStatus.FAILED, "the job was cancelled on the cluster", fields
    if "timed out" in status.message:
        return task, TaskStatus.TIMED_OUT, status.message, fields
    return task, TaskStatus.FAILED, f"the step ended without a result: {status.message or status.state}", fields


def _wait_for_lines(executor, run: PipelineRun, task: TaskRun, count: int, timeout: float = 0.5) -> None:
    """The agent wrote its result after its last line; the job's log may lag a moment behind."""
    if count <= 0:
        return
    marker = f'{{"n": {count},'
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = list(executor.job_logs(task.job_name, paths.job_namespace(run)))
        if any(line.text.startswith(marker) for line in reversed(lines)):
            return
        time.sleep(0.002)


def _record_caches(task: TaskRun, run: PipelineRun, caches: list[dict]) -> None:
    for cache in caches:
        CacheEntry.objects.update_or_create(
            project_id=run.application.project_id, key=str(cache.get("key"))[:300],
            defaults={"archive": str(cache.get("archive")), "size": int(cache.get("size") or 0), "task_run": task},
        )


# ---- cancel, review -------------------------------------------------------------------------


def cancel_run(run: PipelineRun, reason: str = "cancelled") -> bool:
    """Cancel the run: queued tasks never start, running steps are stopped on their cluster."""
    for _ in range(10):  # the run may start between our read and our write: read again
        run.refresh_from_db(fields=["status"])
        if run.status not in (RunStatus.QUEUED, RunStatus.RUNNING):
            return False
        if states.move_run(run, RunStatus.CANCELLED, reason):
            break
    else:
        return False
    executors: dict = {}
    for task in TaskRun.objects.filter(run_id=run.pk, status__in=[TaskStatus.QUEUED, TaskStatus.RUNNING]):
        if task.status == TaskStatus.RUNNING and task.executor == Executor.CLUSTER and task.job_name:
            try:
                executor = steps.task_executor(run, task.type, executors)
                executor.cancel_job(task.job_name, paths.job_namespace(run))
            except ExecutorError as exc:
                log.warning("cancel of job %s failed: %s", task.job_name, exc)
        states.move_task(task, TaskStatus.CANCELLED, reason)
    _start_next(run.application.project_id)
    return True


def review(task: TaskRun, approved: bool, reviewer: str, comment: str = "") -> bool:
    """Approve or reject a manual-review task that is waiting."""
    fields = {"review": "approved" if approved else "rejected", "reviewed_by": reviewer}
    TaskRun.objects.filter(pk=task.pk).update(**fields)
    verdict = "approved" if approved else "rejected"
    steplogs.append_lines(task, [f"{verdict} by {reviewer}" + (f": {comment}" if comment else "")])
    if approved:
        done = conclude(task, TaskStatus.SUCCESS, f"approved by {reviewer}", outputs={"reviewer": reviewer})
    else:
        done = conclude(task, TaskStatus.FAILED, f"rejected by {reviewer}", retry=False)
    dispatch(task.run_id)
    return done


# ---- reconciliation -------------------------------------------------------------------------


def reconcile() -> dict:
    """Compare the database with the clusters and repair: launch claimed tasks whose job never
    started, collect steps that finished while nobody listened, time out worker actions, dispatch
    what is ready, start queued runs. Running steps are re-adopted, never run again."""
    report = {"relaunched": 0, "collected": 0, "adopted": 0, "runs": 0}
    for run in PipelineRun.objects.filter(status=RunStatus.RUNNING).select_related("application__project"):
        report["runs"] += 1
        executors: dict = {}
        for task in TaskRun.objects.filter(run_id=run.pk, status=TaskStatus.RUNNING):
            task.run = run
            if task.executor == Executor.WORKER:
                builtin.reconcile(task, run)
                continue
            expected = paths.job_name(run.pk, task.alias, task.attempt)
            try:
                executor = steps.task_executor(run, task.type, executors)
                state = steps.job_state(executor, run, task).state if task.job_name == expected else None
            except ExecutorError as exc:
                log.warning("reconcile: cluster of run %s unavailable: %s", run.pk, exc)
                break
            if (state is None or state is JobState.MISSING) and steps.read_result(task) is None:
                # Never started (or its start was lost): start it. One whose agent left a result ran,
                # though its cluster forgot it (a worker killed between the fork and the job's
                # record): collected below, never run twice.
                report["relaunched"] += 1
                queue.send("run_task", task.pk)
            elif state is None or state is JobState.MISSING or state.finished or steps.read_result(task) is not None:
                report["collected"] += 1
                queue.send("on_task_finished", task.pk)
            else:
                report["adopted"] += 1
                notify.watch(task.pk)
        dispatch(run.pk)
    projects = set(PipelineRun.objects.filter(status=RunStatus.QUEUED).values_list("application__project_id", flat=True))
    for project_id in projects:
        start_queued_runs(project_id)
    return report
