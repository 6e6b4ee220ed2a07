"""The executor of a runtime: its cluster's, joined by the workspace's data clusters when the
release has services on an engine (`engine: flink`), so those run on the Flink data cluster."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from apps.clusters.services import capabilities, cluster_executor
from apps.deploy.models import Runtime
from diceyml import DiceYml
from scheduler.flink.operator import DEPLOYMENT_CRD, scheduled_refused
from scheduler.routed import EngineRouted, missing_flink


def runtime_executor(runtime: Runtime):
    """cluster_executor(runtime.cluster), routed to the workspace's data clusters by engine."""
    main = cluster_executor(runtime.cluster)
    engines = {}
    for cluster in runtime.workspace.data_clusters.all():
        engine = capabilities(cluster).data_engine  # "spark", "flink": at most one data cluster of each
        if engine and engine not in engines:
            engines[engine] = cluster_executor(cluster)
    return EngineRouted(main, engines)


def check_engine_jobs(workspace, cluster, doc: DiceYml) -> None:
    """Refuse, before anything changes, a spec whose `engine: flink` jobs nothing would run: the
    workspace has no Flink data cluster, and `cluster` (the runtime's) does not run Flink itself
    (Kubernetes runs them through the Flink operator: refused when its last check found the
    operator's CRDs missing; never checked, the apply says so). ValidationError naming the job."""
    jobs = sorted(name for name, job in doc.jobs.items() if job.engine == "flink")
    if not jobs:
        return
    if any(capabilities(c).data_engine == "flink" for c in workspace.data_clusters.all()):
        return
    if "flink" not in capabilities(cluster).engines:
        raise ValidationError({f"jobs.{jobs[0]}": missing_flink(jobs[0])})
    if cluster.checked_at is not None and DEPLOYMENT_CRD not in (cluster.operators or []):
        raise ValidationError({f"jobs.{jobs[0]}": (
            f"job {jobs[0]!r} has `engine: flink` but the workspace has no Flink data cluster and cluster "
            f"{cluster.name!r} has no Flink operator (CRD {DEPLOYMENT_CRD} not installed at its last check): "
            "bind a Flink data cluster to the workspace, or install the operator and check the cluster again")})
    scheduled = [name for name in jobs if doc.jobs[name].schedule]
    if scheduled:
        project = workspace.project
        raise ValidationError({f"jobs.{scheduled[0]}": scheduled_refused(
            scheduled[0], f"{project.organization.slug}/{project.slug} {workspace.kind}")})
