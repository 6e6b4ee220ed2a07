"""The tenant scope of the deploy models, registered with apps.projects.scope at start-up."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.deploy.models import Release
from apps.projects import scope


def releases_for(user) -> QuerySet[Release]:
    """Releases of the applications the user can see."""
    return Release.objects.filter(application__in=scope.applications_for(user))


def register() -> None:
    scope.register(Release, releases_for)
