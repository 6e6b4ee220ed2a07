"""What a finished deployment tells the CMDB: the runtime, its services, its addon instances and
the release, with their relations, so nothing is typed in twice and a deploy followed by a sync
reads as one change history.

Keys are the ones the cluster sync uses for the same things (apps.cmdb.services.runtime_key and
child_key), so on Kubernetes the sync updates these items instead of making others. The deploy
owns the attributes in apps.cmdb.services.DEPLOY_KEYS and the relations `depends-on` (service ->
service, runtime -> release), `uses-addon` (runtime -> addon) and `belongs-to` (service and addon
-> runtime); the sync owns placement (`runs-on`, runtime -> namespace) and keeps the deploy's.

Idempotent: recording the same deployment twice writes no second change.
"""

from __future__ import annotations

import logging

from apps.clusters.services import capabilities
from apps.cmdb import services as cmdb
from apps.cmdb.choices import ItemKind, RelationKind
from apps.deploy.choices import FINAL_STATUSES
from apps.deploy.lifecycle import parse_for
from apps.deploy.models import AddonInstance, Deployment
from apps.deploy.refs import runtime_ref
from scheduler.base import dns_label

log = logging.getLogger(__name__)

SOURCE = "deploy"


def release_key(release) -> str:
    app = release.application
    project = app.project
    return "/".join([dns_label(project.organization.slug), dns_label(project.slug), dns_label(app.slug),
                     f"v{release.version}"])


def record_deployment(deployment_id: int) -> dict | None:
    """Record the items of a deployment that has ended (healthy, failed, ...); None if it has not."""
    deployment = Deployment.objects.select_related(
        "release__application__project__organization", "runtime__application__project__organization",
        "runtime__workspace", "runtime__cluster",
    ).filter(pk=deployment_id).first()
    if deployment is None or deployment.status not in FINAL_STATUSES:
        return None
    runtime = deployment.runtime
    # What the runtime runs now: the deployment's release once applied; the earlier one when
    # the deployment failed before applying anything.
    release = runtime.release if runtime.release_id else deployment.release
    org = runtime.application.project.organization
    cluster = runtime.cluster
    source = f"{SOURCE}:{deployment.pk}"
    doc = parse_for(release, runtime.workspace.kind)
    ref = runtime_ref(runtime)
    rt_key = cmdb.runtime_key(ref.org, ref.project, ref.app, ref.workspace, ref.name)

    release_item = cmdb.record_item(ItemKind.RELEASE, release_key(release), {
        "application": f"{ref.project}/{ref.app}", "version": release.version, "spec_hash": release.spec_hash,
        "images": dict(release.images or {}), "description": release.description,
        "created_by": release.created_by_name, "pipeline_run": release.pipeline_run_id,
    }, source, name=f"{runtime.application.slug} v{release.version}", organization=org)

    addon_rows = {a.name: a for a in AddonInstance.objects.filter(runtime=runtime)}
    addon_items = {}
    for name, addon in sorted(doc.addons.items()):
        row = addon_rows.get(name)
        addon_items[name] = cmdb.record_item(ItemKind.ADDON, cmdb.child_key(rt_key, name), {
            "type": row.type if row else addon.type, "plan": addon.plan, "release": f"v{release.version}",
        }, source, name=name, cluster=cluster, organization=org, keep=True,
            keep_relations=(RelationKind.RUNS_ON,))

    replicas = {name: int((runtime.replicas or {}).get(name, svc.deployments.replicas))
                for name, svc in doc.services.items()}
    runtime_item = cmdb.record_item(ItemKind.RUNTIME, rt_key, {
        "org": dns_label(ref.org), "project": dns_label(ref.project), "app": dns_label(ref.app),
        "workspace": ref.workspace.upper(), "runtime": dns_label(ref.name), "cluster": cluster.name,
        **({"namespace": ref.namespace} if capabilities(cluster).namespaces else {}),
        "services": dict(sorted(replicas.items())), "addons": sorted(doc.addons),
        "release": f"v{release.version}", "release_id": release.pk,
        "deployment": deployment.pk, "deployment_status": str(deployment.status),
    }, source, name=f"{ref.app}/{ref.workspace}/{ref.name}", cluster=cluster, organization=org, keep=True,
        relations=[(RelationKind.DEPENDS_ON, release_item),
                   *((RelationKind.USES_ADDON, item) for item in addon_items.values())],
        keep_relations=(RelationKind.RUNS_ON, RelationKind.BELONGS_TO))

    for item in addon_items.values():
        cmdb.set_relations(item, [(RelationKind.BELONGS_TO, runtime_item)], keep=(RelationKind.RUNS_ON,))
    service_items = {}
    for name, svc in sorted(doc.services.items()):
        image = (release.image_overrides or {}).get(name) or (release.images or {}).get(name) or svc.image or ""
        service_items[name] = cmdb.record_item(ItemKind.SERVICE, cmdb.child_key(rt_key, name), {
            "replicas": replicas[name], "image": image, "depends_on": sorted(svc.depends_on),
            "release": f"v{release.version}",
        }, source, name=name, cluster=cluster, organization=org, keep=True,
            relations=[(RelationKind.BELONGS_TO, runtime_item)], keep_relations=(RelationKind.RUNS_ON,))
    for name, svc in doc.services.items():
        deps = [(RelationKind.BELONGS_TO, runtime_item)]
        deps += [(RelationKind.DEPENDS_ON, service_items[d]) for d in svc.depends_on if d in service_items]
        deps += [(RelationKind.DEPENDS_ON, addon_items[d]) for d in svc.depends_on if d in addon_items]
        cmdb.set_relations(service_items[name], deps, keep=(RelationKind.RUNS_ON,))
    return {"runtime": runtime_item.pk, "release": release_item.pk,
            "services": sorted(service_items), "addons": sorted(addon_items)}


def record_quietly(deployment_id: int) -> None:
    """record_deployment, never failing the caller (the rollout's result stands either way)."""
    try:
        record_deployment(deployment_id)
    except Exception:
        log.exception("recording deployment %s in the CMDB failed", deployment_id)
