"""From console rows to the scheduler's value types: the cluster connection, the executor, the runtime."""

from __future__ import annotations

import dataclasses

from django.conf import settings

from apps.clusters import services as clusters
from apps.deploy.models import Runtime
from scheduler import registry
from scheduler.base import ClusterRef, Executor, Overcommit, RuntimeRef


def cluster_ref(cluster) -> ClusterRef:
    """The scheduler's view of a cluster (apps.clusters decides credentials and ratios)."""
    ref = clusters.cluster_ref(cluster)
    config = dict(ref.config)
    # apps.clusters hands the decrypted kubeconfig as text; the driver reads `kubeconfig` (path or text).
    if config.get("kubeconfig_text") and not config.get("kubeconfig"):
        config["kubeconfig"] = config.pop("kubeconfig_text")
    if ref.kind == "local" and not config.get("root"):
        config["root"] = str(settings.DICE_LOCAL_ROOT)
    return dataclasses.replace(ref, config=config)


def executor_for(cluster) -> Executor:
    return registry.get_executor(cluster_ref(cluster))


def overcommit_for(cluster, workspace: str) -> Overcommit:
    return clusters.overcommit_for(cluster, workspace)


def runtime_ref(runtime: Runtime) -> RuntimeRef:
    app = runtime.application
    project = app.project
    return RuntimeRef(
        org=project.organization.slug,
        project=project.slug,
        app=app.slug,
        workspace=runtime.workspace.kind,
        name=runtime.name,
        runtime_id=runtime.pk,
    )
