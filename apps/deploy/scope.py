"""The tenant scope of the deploy models, registered with apps.projects.scope at start-up."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.deploy.models import (
    AddonInstance,
    Deployment,
    DeploymentTransition,
    EnvironmentVariable,
    Release,
    ReleaseBundle,
    Runtime,
)
from apps.projects import scope

# The big tables filter on the organization and project kept on each row (scope.Reach).
_IN_SCOPE = {"organization": "scope_organization", "project": "scope_project"}


def releases_for(user) -> QuerySet[Release]:
    """Releases of the applications the user can see."""
    return Release.objects.filter(scope.reach(user).q(**_IN_SCOPE))


def bundles_for(user) -> QuerySet[ReleaseBundle]:
    return ReleaseBundle.objects.filter(release__application__in=scope.applications_for(user))


def runtimes_for(user) -> QuerySet[Runtime]:
    """Runtimes of the applications the user can see."""
    return Runtime.objects.filter(scope.reach(user).q(**_IN_SCOPE))


def deployments_for(user) -> QuerySet[Deployment]:
    return Deployment.objects.filter(scope.reach(user).q(**_IN_SCOPE, application="runtime__application"))


def transitions_for(user) -> QuerySet[DeploymentTransition]:
    return DeploymentTransition.objects.filter(deployment__runtime__application__in=scope.applications_for(user))


def addon_instances_for(user) -> QuerySet[AddonInstance]:
    return AddonInstance.objects.filter(runtime__application__in=scope.applications_for(user))


def variables_for(user) -> QuerySet[EnvironmentVariable]:
    """Environment variables of the applications the user can see (secret values stay masked)."""
    return EnvironmentVariable.objects.filter(application__in=scope.applications_for(user))


def register() -> None:
    scope.register(Release, releases_for)
    scope.register(ReleaseBundle, bundles_for)
    scope.register(Runtime, runtimes_for)
    scope.register(Deployment, deployments_for)
    scope.register(DeploymentTransition, transitions_for)
    scope.register(AddonInstance, addon_instances_for)
    scope.register(EnvironmentVariable, variables_for)
