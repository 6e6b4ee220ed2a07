"""Tenant isolation in one place: every view, viewset and consumer reads through these querysets."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet

from apps.projects import permissions as perms
from apps.projects.models import ApiToken, Application, AuditEvent, Member, Organization, Project, Workspace


def _anonymous(user) -> bool:
    return user is None or not user.is_authenticated


@dataclass(frozen=True)
class Reach:
    """What a user's memberships reach, as ids read once: organizations where they hold an
    organization-level role, projects with a project-level role, applications with an
    application-level role (`everything` for superusers).

    The big tables (audit events, releases, runtimes, deployments, pipeline runs) keep their
    organization, project and application beside each row, so their scope is a filter on those
    columns with these ids as literals: the planner then reads the row indexes
    (`organization_id, created`...) in order. A filter by IN-subquery over the memberships, as the
    small tables use, hid the ids from the planner and made every list a full scan and sort."""

    everything: bool = False
    organizations: frozenset[int] = frozenset()
    projects: frozenset[int] = frozenset()
    applications: frozenset[int] = frozenset()

    def q(self, *, organization: str | None = "organization", project: str | None = "project",
          application: str | None = "application") -> Q:
        """The rows in reach, for a model whose columns at those paths hold the row's organization,
        project and application (a path None: the model has no such column)."""
        if self.everything:
            return Q()
        cond = Q(pk__in=[])
        for path, ids in ((organization, self.organizations), (project, self.projects),
                          (application, self.applications)):
            if path and ids:
                cond |= Q(**{f"{path}_id__in": sorted(ids)})
        return cond


def reach(user) -> Reach:
    """The user's reach, from one query over their memberships."""
    if _anonymous(user):
        return Reach()
    if user.is_superuser:
        return Reach(everything=True)
    orgs, projects, apps = set(), set(), set()
    for org, project, app in Member.objects.filter(user=user).values_list(
            "organization_id", "project_id", "application_id"):
        if app is not None:
            apps.add(app)
        elif project is not None:
            projects.add(project)
        else:
            orgs.add(org)
    return Reach(organizations=frozenset(orgs), projects=frozenset(projects), applications=frozenset(apps))


def organizations_for(user) -> QuerySet[Organization]:
    """Organizations in which the user has any membership (superusers see all)."""
    if _anonymous(user):
        return Organization.objects.none()
    if user.is_superuser:
        return Organization.objects.all()
    return Organization.objects.filter(pk__in=Member.objects.filter(user=user).values("organization"))


def projects_for(user) -> QuerySet[Project]:
    """Projects the user can see: all of an org they belong to at org level, or by a narrower role."""
    if _anonymous(user):
        return Project.objects.none()
    if user.is_superuser:
        return Project.objects.all()
    mine = Member.objects.filter(user=user)
    return Project.objects.filter(
        Q(organization__in=mine.filter(project__isnull=True, application__isnull=True).values("organization"))
        | Q(pk__in=mine.filter(project__isnull=False).values("project"))
        | Q(pk__in=mine.filter(application__isnull=False).values("application__project"))
    )


def applications_for(user) -> QuerySet[Application]:
    if _anonymous(user):
        return Application.objects.none()
    if user.is_superuser:
        return Application.objects.all()
    mine = Member.objects.filter(user=user)
    return Application.objects.filter(
        Q(project__organization__in=mine.filter(project__isnull=True, application__isnull=True).values("organization"))
        | Q(project__in=mine.filter(project__isnull=False, application__isnull=True).values("project"))
        | Q(pk__in=mine.filter(application__isnull=False).values("application"))
    )


def workspaces_for(user) -> QuerySet[Workspace]:
    return Workspace.objects.filter(project__in=projects_for(user))


def members_for(user) -> QuerySet[Member]:
    """Memberships visible to the user: those of the organizations the user belongs to."""
    return Member.objects.filter(organization__in=organizations_for(user))


def audit_events_for(user) -> QuerySet[AuditEvent]:
    """Events of what the user may see: an organization-level member sees the organization's events,
    a project-level member the project's (and its applications'), an application-level member that
    application's; everyone sees their own actions."""
    if _anonymous(user):
        return AuditEvent.objects.none()
    if user.is_superuser:
        return AuditEvent.objects.all()
    return AuditEvent.objects.filter(reach(user).q() | Q(actor_id=user.pk))


def tokens_for(user) -> QuerySet[ApiToken]:
    if _anonymous(user):
        return ApiToken.objects.none()
    return ApiToken.objects.filter(user=user)


# Model -> the queryset function that scopes it. Later apps register theirs here.
SCOPED: dict[type, callable] = {
    Organization: organizations_for,
    Project: projects_for,
    Application: applications_for,
    Workspace: workspaces_for,
    Member: members_for,
    AuditEvent: audit_events_for,
    ApiToken: tokens_for,
}


def register(model, queryset_for) -> None:
    """Let another app's model be scoped through this module."""
    SCOPED[model] = queryset_for


def scoped(user, model) -> QuerySet:
    try:
        return SCOPED[model](user)
    except KeyError:
        raise LookupError(f"{model.__name__} has no organization scope registered") from None


# ---- roles and permissions on one object -------------------------------------------------


def roles_on(user, obj) -> set[str]:
    """The roles that apply to obj: org-level roles cover everything in the org, and so on down."""
    if _anonymous(user):
        return set()
    org = obj.organization
    project = getattr(obj, "project", None) if not isinstance(obj, Project) else obj
    if isinstance(obj, Organization):
        project = None
    app = obj if isinstance(obj, Application) else None
    q = Q(project__isnull=True, application__isnull=True)
    if project is not None:
        q |= Q(project=project, application__isnull=True)
    if app is not None:
        q |= Q(application=app)
    return set(Member.objects.filter(user=user, organization=org).filter(q).values_list("role", flat=True))


def has_perm(user, perm: str, obj) -> bool:
    if _anonymous(user):
        return False
    if user.is_superuser:
        return True
    return any(perms.role_allows(role, perm) for role in roles_on(user, obj))


def can_manage_clusters(user) -> bool:
    if _anonymous(user):
        return False
    if user.is_superuser:
        return True
    roles = Member.objects.filter(user=user, project__isnull=True, application__isnull=True)
    return any(perms.role_allows(r, perms.MANAGE_CLUSTERS) for r in roles.values_list("role", flat=True))
