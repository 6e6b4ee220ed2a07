"""What a release holds, in readable form: services, addons and jobs, and the spec per workspace."""

from __future__ import annotations

from apps.deploy.models import Release
from diceyml import DiceYml, effective_spec, parse_dice_yml
from speckit.errors import SpecInvalid


def parsed(release: Release, workspace: str | None = None) -> DiceYml:
    """The release's spec, typed (for one workspace, or the base file)."""
    return parse_dice_yml(release.spec_text, source=release.source_name, workspace=workspace)


def summarize(doc: DiceYml, images: dict[str, str]) -> dict:
    """Services (image, replicas, cpu, mem, ports, depends_on), addons (type, size) and jobs."""
    services = []
    for name, svc in doc.services.items():
        services.append({
            "name": name,
            "image": images.get(name) or svc.image or None,
            "replicas": svc.deployments.replicas,
            "cpu": svc.resources.cpu,
            "mem": svc.resources.mem,
            "max_cpu": svc.resources.max_cpu,
            "max_mem": svc.resources.max_mem,
            "ports": [{"port": p.port, "protocol": p.protocol, "expose": p.expose} for p in svc.ports],
            "depends_on": list(svc.depends_on),
            "endpoints": [f"{e.domain}{e.path}" for e in svc.endpoints],
        })
    addons = [
        {"name": name, "type": addon.type, "size": addon.size, "plan": addon.plan, "as": addon.as_}
        for name, addon in doc.addons.items()
    ]
    jobs = [
        {
            "name": name,
            "image": images.get(name) or job.image or None,
            "schedule": job.schedule,
            "broadcast": job.broadcast,
            "cpu": job.resources.cpu,
            "mem": job.resources.mem,
        }
        for name, job in doc.jobs.items()
    ]
    missing = [w["name"] for w in (*services, *jobs) if not w["image"]]
    return {"services": services, "addons": addons, "jobs": jobs, "missing_images": missing}


def release_summary(release: Release) -> dict:
    try:
        doc = parsed(release)
    except SpecInvalid as exc:  # a spec valid when made but refused by a newer parser
        return {"services": [], "addons": [], "jobs": [], "missing_images": [], "error": str(exc)}
    return summarize(doc, release.images)


def effective_for(release: Release, workspace: str | None) -> dict:
    """The spec as it deploys to a workspace, images included: the image map given at creation
    wins, else the image the workspace's merged spec names. Raises SpecInvalid."""
    data = effective_spec(release.spec_text, source=release.source_name, workspace=workspace)
    for section in ("services", "jobs"):
        for name, workload in (data.get(section) or {}).items():
            override = release.image_overrides.get(name)
            if override:
                workload["image"] = override
    return data
