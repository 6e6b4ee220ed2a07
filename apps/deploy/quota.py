"""Workspace quotas: what a runtime asks of the cluster (requests after overcommit) against the
workspace's cpu_quota and mem_quota, counting the workspace's other runtimes.

A data engine's job (`engine: spark`) counts its driver and every executor, each as a service's
replica would count (its cores and memory over the overcommit ratios of the cluster that runs it:
the workspace's Spark data cluster, else the runtime's own). Scheduled ones count too: the quota
reserves what they take when they run."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.core.exceptions import ValidationError

from apps.clusters.services import capabilities, overcommit_for
from apps.deploy.choices import ACTIVE_STATUSES
from apps.deploy.models import Deployment, Runtime
from diceyml import DiceYml, parse_dice_yml
from scheduler.base import ExecutorError
from scheduler.resources import allocate, allocate_resources
from scheduler.spark.app import from_params
from speckit.errors import SpecInvalid


@dataclass(frozen=True)
class Requests:
    cpu: float = 0.0  # cores
    mem: int = 0  # MiB
    # what the data engines' jobs among them ask, one line each ("jobs.load: 1.5 cores, 1536 MiB (...)")
    engine_jobs: tuple[str, ...] = field(default=(), compare=False)

    def __add__(self, other: Requests) -> Requests:
        return Requests(self.cpu + other.cpu, self.mem + other.mem, self.engine_jobs + other.engine_jobs)


def engine_clusters(workspace, doc: DiceYml) -> dict:
    """engine -> the workspace's data cluster of that engine ({} without a data engine's job in doc:
    no query then)."""
    found: dict = {}
    if not any(job.engine for job in doc.jobs.values()):
        return found
    for cluster in workspace.data_clusters.all():
        engine = capabilities(cluster).data_engine
        if engine and engine not in found:
            found[engine] = cluster
    return found


def engine_job_requests(doc: DiceYml, overcommit_of, workspace: str) -> Requests:
    """The `engine: spark` jobs' driver and executors, each counted as a replica (overcommit_of(engine)
    gives the ratios of the cluster that runs the engine). ValidationError naming the job's field
    when its sizes are invalid or the overcommit is refused."""
    total = Requests()
    for name, job in sorted(doc.jobs.items()):
        if job.engine == "spark":
            total += spark_requests(job.engine_params(), f"jobs.{name}", overcommit_of(job.engine), workspace)
    return total


def spark_requests(params: dict, where: str, overcommit, workspace: str) -> Requests:
    """A Spark application's driver and executors (a dice.yml job's or a `spark` step's params),
    each counted as a replica after the overcommit ratios; ValidationError naming `where` when
    its sizes are invalid or the overcommit is refused."""
    try:
        app = from_params(params, where)
        driver = allocate(app.driver_cores, app.driver_mem, None, None, overcommit, workspace)
        executor = allocate(app.executor_cores, app.executor_mem, None, None, overcommit, workspace)
    except ExecutorError as exc:
        raise ValidationError({where: str(exc)}) from None
    cpu = driver.cpu_request + app.executor_instances * executor.cpu_request
    mem = driver.mem_request + app.executor_instances * executor.mem_request
    note = (f"{where}: {cpu:.2f} cores, {mem} MiB (driver + {app.executor_instances} "
            f"executor{'s' if app.executor_instances != 1 else ''}, sparkConf.driverResource and executorResource)")
    return Requests(round(cpu, 3), mem, (note,))


def requests_of(doc: DiceYml, cluster, workspace: str, replicas: dict | None = None,
                data_clusters: dict | None = None) -> Requests:
    """Sum over services of replicas x request (after the cluster's overcommit for the workspace),
    plus the driver and executors of the data engines' jobs (on `data_clusters[engine]`'s ratios, else
    the cluster's). Addons and other jobs are not counted: addon sizes are the cluster's business,
    jobs are short-lived. Raises ValidationError when the overcommit itself is refused (memory in PROD)."""
    overcommit = overcommit_for(cluster, workspace)
    cpu, mem = 0.0, 0
    for name, svc in doc.services.items():
        count = (replicas or {}).get(name, svc.deployments.replicas)
        try:
            alloc = allocate_resources(svc.resources, overcommit, workspace)
        except ExecutorError as exc:
            raise ValidationError({"overcommit": str(exc)}) from None
        cpu += count * alloc.cpu_request
        mem += count * alloc.mem_request
    data_clusters = data_clusters or {}

    def overcommit_of(engine: str):
        return overcommit_for(data_clusters[engine], workspace) if engine in data_clusters else overcommit

    return Requests(round(cpu, 3), mem) + engine_job_requests(doc, overcommit_of, workspace)


def runtime_requests(runtime: Runtime) -> Requests:
    """What a runtime asks: the release of its unfinished deployment if it has one (so two
    rollouts racing into one workspace count each other), else its current release with the
    replicas changed by scale/stop."""
    pending = (
        Deployment.objects.filter(runtime=runtime, status__in=ACTIVE_STATUSES)
        .select_related("release").order_by("-created", "-id").first()
    )
    release = pending.release if pending else runtime.release
    replicas = None if pending else runtime.replicas
    if release is None:
        return Requests()
    try:
        doc = parse_dice_yml(release.spec_text, source=release.source_name, workspace=runtime.workspace.kind)
    except SpecInvalid:
        return Requests()  # a spec a newer parser refuses cannot be counted; it does not block others
    try:
        return requests_of(doc, runtime.cluster, runtime.workspace.kind, replicas,
                           engine_clusters(runtime.workspace, doc))
    except ValidationError:
        return Requests()


def check_quota(workspace, wanted: Requests, *, excluding: Runtime | None = None, what: str = "this runtime") -> None:
    """ValidationError({"quota": ...}) naming the quota and the excess when wanted plus the
    workspace's other runtimes exceed cpu_quota or mem_quota."""
    others = Runtime.objects.filter(workspace=workspace).select_related(
        "release", "cluster", "workspace"
    )
    if excluding is not None and excluding.pk:
        others = others.exclude(pk=excluding.pk)
    used = Requests()
    for other in others:
        used += runtime_requests(other)
    total = wanted + used
    problems = []
    cpu_quota = float(Decimal(workspace.cpu_quota))
    if total.cpu > cpu_quota + 1e-9:
        problems.append(
            f"CPU quota of workspace {workspace} exceeded by {total.cpu - cpu_quota:.2f} cores: "
            f"{what} requests {wanted.cpu:.2f}, the workspace's other runtimes {used.cpu:.2f}, "
            f"quota {cpu_quota:.2f}"
        )
    if total.mem > workspace.mem_quota:
        problems.append(
            f"memory quota of workspace {workspace} exceeded by {total.mem - workspace.mem_quota} MiB: "
            f"{what} requests {wanted.mem} MiB, the workspace's other runtimes {used.mem} MiB, "
            f"quota {workspace.mem_quota} MiB"
        )
    if problems and wanted.engine_jobs:
        problems.append("Spark counts the driver and every executor: " + "; ".join(wanted.engine_jobs))
    if problems:
        raise ValidationError({"quota": problems})
