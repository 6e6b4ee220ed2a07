"""Template tags of the release pages: the latest releases of an application, through the scope."""

from django import template

from apps.deploy.models import Release
from apps.projects import scope

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
