"""Template tags of the release and runtime pages, reading through the scope."""

from django import template
from django.db.models import OuterRef, Subquery
from django.urls import reverse

from apps.deploy.models import Deployment, Release, Runtime
from apps.projects import scope
from apps.projects.choices import WorkspaceKind

register = template.Library()


@register.simple_tag
def recent_releases(user, application, limit=5):
    return list(
        scope.scoped(user, Release)
        .filter(application=application)
        .select_related("application__project__organization")
        .defer("spec_text")
        .order_by("-version")[:limit]
    )


@register.simple_tag
def runtime_url(action, runtime):
    """The URL of one of a runtime's pages or buttons: {% runtime_url "scale" runtime %}."""
    app = runtime.application
    project = app.project
    name = "deploy:runtime" if action == "page" else f"deploy:runtime_{action}"
    return reverse(name, args=[project.organization.slug, project.slug, app.slug, runtime.workspace.kind, runtime.name])


@register.simple_tag
def runtimes_by_workspace(user, application):
    """[(workspace, [runtime, ...]), ...] for the application page, every workspace listed; each
    runtime carries `latest` (its newest deployment)."""
    newest = Deployment.objects.filter(runtime=OuterRef("pk")).order_by("-created", "-id").values("pk")[:1]
    runtimes = list(
        scope.scoped(user, Runtime)
        .filter(application=application)
        .select_related("workspace", "cluster", "release", "application__project__organization")
        .annotate(latest_id=Subquery(newest))
        .order_by("name")
    )
    latest = Deployment.objects.select_related("release").in_bulk([r.latest_id for r in runtimes if r.latest_id])
    out = []
    for workspace in application.project.workspaces.select_related("cluster").order_by("pk"):
        mine = [r for r in runtimes if r.workspace_id == workspace.pk]
        for r in mine:
            r.latest = latest.get(r.latest_id)
        out.append((workspace, mine))
    order = {k: i for i, k in enumerate(WorkspaceKind.values)}
    return sorted(out, key=lambda pair: order.get(pair[0].kind, 9))


@register.simple_tag
def progress_row(progress, name):
    """The progress entry of one addon or service of a deployment's progress JSON."""
    progress = progress or {}
    return (progress.get("addons") or {}).get(name) or (progress.get("services") or {}).get(name)


@register.filter
def epoch(value):
    """Unix time -> an aware datetime, for the date filters."""
    import datetime

    try:
        return datetime.datetime.fromtimestamp(float(value), tz=datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError, OverflowError):
        return ""


