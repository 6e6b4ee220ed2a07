"""Celery tasks of the clusters app: the periodic sync and inspection. Each takes ids, re-reads its
rows and is idempotent. The beat schedule is created by migration 0004 (django-celery-beat).

The beat entry `dice.clusters.inspect_all` inspects every Kubernetes cluster hourly; a scheduled
ops pipeline (a pipeline.yml with `cron` and the `cluster-inspect` action, examples/ops/inspect.yml,
apps.clusters.ops_pipeline) does the same for one cluster inside a project's pipelines.
"""

from __future__ import annotations

import logging

from celery import shared_task

from apps.clusters.models import Cluster

log = logging.getLogger(__name__)


@shared_task(name="dice.clusters.sync")
def sync_cluster(cluster_id: int) -> dict:
    from apps.clusters.sync import sync_cluster as sync

    cluster = Cluster.objects.filter(pk=cluster_id).first()
    if cluster is None:
        return {"skipped": "no such cluster"}
    return sync(cluster)


@shared_task(name="dice.clusters.sync_all")
def sync_all() -> dict:
    """Sync every cluster; one failing cluster does not stop the others."""
    from apps.clusters.sync import sync_cluster as sync

    results = {}
    for cluster in Cluster.objects.all():
        try:
            results[cluster.name] = sync(cluster)
        except Exception as exc:
            log.warning("sync of cluster %s failed: %s", cluster.name, exc)
            results[cluster.name] = {"error": str(exc)}
    return results


@shared_task(name="dice.clusters.inspect")
def inspect_cluster(cluster_id: int) -> int | None:
    from apps.clusters.inspection import inspect_cluster as inspect

    cluster = Cluster.objects.filter(pk=cluster_id).first()
    return inspect(cluster).pk if cluster else None


@shared_task(name="dice.clusters.inspect_all")
def inspect_all() -> dict:
    from apps.clusters.inspection import inspect_cluster as inspect

    return {c.name: inspect(c).counts for c in Cluster.objects.filter(kind="kubernetes")}


@shared_task(name="dice.clusters.check_all")
def check_all() -> dict:
    from apps.clusters.services import run_check

    return {c.name: run_check(c)["status"] for c in Cluster.objects.all()}
