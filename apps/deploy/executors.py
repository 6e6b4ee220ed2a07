"""From console rows to the scheduler's value types: the cluster connection, the executor, the runtime."""

from __future__ import annotations

from apps.clusters import services as clusters
from apps.deploy.models import Runtime
from scheduler import registry
from scheduler.base import ClusterRef, Executor, Overcommit, RuntimeRef


def cluster_ref(cluster) -> ClusterRef:
    """The scheduler's view of a cluster (apps.clusters decides credentials, ratios, the local root)."""
    return clusters.cluster_ref(cluster)


def executor_for(cluster) -> Executor:
    return registry.get_executor(cluster_ref(cluster))


def overcommit_for(cluster, workspace: str) -> Overcommit:
    return clusters.overcommit_for(cluster, workspace)


def node_selectors_for(cluster, workspace: str) -> dict[str, dict[str, str]]:
    """The node labels each kind of workload of the workspace requires on the cluster (its nodes'
    `dice/` labels, set on the cluster page)."""
    return {kind: clusters.node_selector_for(cluster, workspace, kind) for kind in clusters.NODE_KINDS}


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
