"""Celery tasks of the clusters app: the periodic sync and inspection. Each takes ids, re-reads its
rows and is idempotent. The beat schedule is created by migration 0004 (django-celery-beat).

The beat entry `dice.clusters.inspect_all` inspects every cluster that has something to inspect hourly; a scheduled
ops pipeline (a pipeline.yml with `cron` and the `cluster-inspect` action, examples/ops/inspect.yml,
apps.clusters.ops_pipeline) does the same for one cluster inside a project's pipelines.
"""

from __future__ import annotations

import logging

from celery import shared_task

from apps.clusters import inspection, services, sync
from apps.clusters.models import Cluster

log = logging.getLogger(__name__)


@shared_task(name="dice.clusters.sync")
def sync_cluster(cluster_id: int) -> dict:
    cluster = Cluster.objects.filter(pk=cluster_id).first()
    if cluster is None:
        return {"skipped": "no such cluster"}
    return sync.sync_cluster(cluster)


@shared_task(name="dice.clusters.sync_all")
def sync_all() -> dict:
    """Sync every cluster; one failing cluster does not stop the others."""
    results = {}
    for cluster in Cluster.objects.all():
        try:
            results[cluster.name] = sync.sync_cluster(cluster)
        except Exception as exc:
            log.warning("sync of cluster %s failed: %s", cluster.name, exc)
            results[cluster.name] = {"error": str(exc)}
    return results


@shared_task(name="dice.clusters.inspect")
def inspect_cluster(cluster_id: int) -> int | None:
    cluster = Cluster.objects.filter(pk=cluster_id).first()
    return inspection.inspect_cluster(cluster).pk if cluster else None


@shared_task(name="dice.clusters.inspect_all")
def inspect_all() -> dict:
    return {c.name: inspection.inspect_cluster(c).counts for c in Cluster.objects.all()
            if services.capabilities(c).inspection}


@shared_task(name="dice.clusters.check_all")
def check_all() -> dict:
    return {c.name: services.run_check(c)["status"] for c in Cluster.objects.all()}


@shared_task(name="dice.clusters.fire_engine_schedules")
def fire_engine_schedules() -> dict:
    """Ask every data engine's cluster (capability `data_engine`) to submit the runs of the dice.yml
    jobs whose `schedule` came due (SparkExecutor.fire_schedules): the engine keeps the schedules it
    was given by deployments, this only gives it the time to act. A run is named after its minute,
    so a second call in the same minute submits nothing; one failing cluster does not stop the others."""
    results: dict = {}
    for cluster in Cluster.objects.all():
        if not services.capabilities(cluster).data_engine:
            continue
        fire = getattr(services.cluster_executor(cluster), "fire_schedules", None)
        if fire is None:
            continue
        try:
            results[cluster.name] = fire()
        except Exception as exc:
            log.warning("scheduled jobs of cluster %s: %s", cluster.name, exc)
            results[cluster.name] = {"error": str(exc)}
    return results
