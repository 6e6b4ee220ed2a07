"""The hosted repository panel of an application page: clone URL, branches, recent commits."""

from django import template

from apps.pipelines import git_http, repos
from apps.pipelines.models import PreviewEnvironment

register = template.Library()


@register.simple_tag(takes_context=True)
def hosted_repository(context, application) -> dict:
    request = context.get("request")
    pk = application.pk
    try:
        branches, commits = repos.branches(pk), repos.recent_commits(pk)
    except repos.RepoError as exc:
        branches, commits = [], []
        context["repo_error"] = str(exc)
    return {"clone_url": git_http.clone_url(application, request), "exists": repos.exists(pk),
            "branches": branches, "commits": commits}


@register.simple_tag
def previews_of(application):
    """The application's preview environments (merge requests' pr-<N> runtimes), newest first."""
    return list(PreviewEnvironment.objects.filter(application=application).select_related("run")[:50])
