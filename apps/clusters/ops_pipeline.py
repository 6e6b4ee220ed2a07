"""The cluster inspection as a pipeline step: the built-in action `cluster-inspect` (run by the
Celery worker, see apps.pipelines.builtin) calls inspect_for_pipeline, which runs the same
inspection as the hourly beat entry, stores the report (shown on /clusters/NAME/inspection/) and
returns what the run's actor may see of it. A pipeline.yml with `cron` and this action is a
scheduled ops pipeline: see examples/ops/inspect.yml.

Which cluster: the param `cluster` (a name), else the cluster of the run's workspace. Someone
who cannot manage clusters may inspect only the clusters their project's workspaces are bound
to, and the counts and log lines cover only the findings they may see (cluster-wide ones and
their own organizations')."""

from __future__ import annotations

from dataclasses import dataclass

from apps.clusters.choices import Severity
from apps.clusters.inspection import inspect_cluster, visible_findings
from apps.clusters.models import Cluster

FAIL_LEVELS = {"critical": (Severity.CRITICAL,), "warning": (Severity.CRITICAL, Severity.WARNING)}


class InspectionRefused(Exception):
    """The cluster does not exist, or the actor may not inspect it."""


@dataclass
class InspectionResult:
    cluster: str
    report_id: int
    counts: dict[str, int]
    findings: list[dict]
    error: str
    failed_on: int  # findings at or above `fail_on` (0 without it)


def inspect_for_pipeline(user, project, cluster_name: str, fail_on: str = "") -> InspectionResult:
    from apps.projects import scope
    from apps.projects.models import Workspace

    fail_on = str(fail_on or "").strip().lower()
    if fail_on and fail_on not in FAIL_LEVELS:
        raise ValueError(f"fail_on must be one of {', '.join(sorted(FAIL_LEVELS))}, got {fail_on!r}")
    cluster = Cluster.objects.filter(name=cluster_name).first()
    bound = Workspace.objects.filter(project=project, cluster=cluster).exists() if cluster else False
    if cluster is None or not (bound or scope.can_manage_clusters(user)):
        raise InspectionRefused(f"no cluster {cluster_name!r} that this project may inspect")
    report = inspect_cluster(cluster)
    findings = visible_findings(user, report) if user is not None else [f for f in report.findings
                                                                         if not f["namespace"]]
    counts = {s: sum(1 for f in findings if f["severity"] == s) for s in Severity.values}
    failing = sum(counts[s] for s in FAIL_LEVELS.get(fail_on, ()))
    return InspectionResult(cluster.name, report.pk, counts, findings, report.error, failing)


def workspace_cluster(project, workspace: str) -> str:
    from apps.projects.models import Workspace

    row = Workspace.objects.select_related("cluster").filter(project=project, kind=workspace).first()
    return row.cluster.name if row is not None and row.cluster_id else "local"
