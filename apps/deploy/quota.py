"""Workspace quotas: what a runtime asks of the cluster (requests after overcommit) against the
workspace's cpu_quota and mem_quota, counting the workspace's other runtimes."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError

from apps.clusters.services import overcommit_for
from apps.deploy.choices import ACTIVE_STATUSES
from apps.deploy.models import Deployment, Runtime
from diceyml import DiceYml, parse_dice_yml
from scheduler.base import ExecutorError
from scheduler.resources import allocate_resources
from speckit.errors import SpecInvalid


@dataclass(frozen=True)
class Requests:
    cpu: float = 0.0  # cores
    mem: int = 0  # MiB

    def __add__(self, other: Requests) -> Requests:
        return Requests(self.cpu + other.cpu, self.mem + other.mem)


def requests_of(doc: DiceYml, cluster, workspace: str, replicas: dict | None = None) -> Requests:
    """Sum over services of replicas x request (after the cluster's overcommit for the workspace).
    Addons and jobs are not counted: addon sizes are the cluster's business, jobs are short-lived.
    Raises ValidationError when the overcommit itself is refused (memory in PROD)."""
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
    return Requests(round(cpu, 3), mem)


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
        return requests_of(doc, runtime.cluster, runtime.workspace.kind, replicas)
    except ValidationError:
        return Requests()


def check_quota(workspace, wanted: Requests, *, excluding: Runtime | None = None) -> None:
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
            f"this runtime requests {wanted.cpu:.2f}, the workspace's other runtimes {used.cpu:.2f}, "
            f"quota {cpu_quota:.2f}"
        )
    if total.mem > workspace.mem_quota:
        problems.append(
            f"memory quota of workspace {workspace} exceeded by {total.mem - workspace.mem_quota} MiB: "
            f"this runtime requests {wanted.mem} MiB, the workspace's other runtimes {used.mem} MiB, "
            f"quota {workspace.mem_quota} MiB"
        )
    if problems:
        raise ValidationError({"quota": problems})
