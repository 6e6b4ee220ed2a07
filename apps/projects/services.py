"""The one place that changes tenancy state; views, API, admin and CLI all come through here."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.clusters import scope as cluster_scope
from apps.clusters.models import LOCAL_CLUSTER_NAME, Cluster
from apps.projects import audit, repourls, revocation, scope
from apps.projects import permissions as perms
from apps.projects.choices import Role, WorkspaceKind
from apps.projects.models import ApiToken, Application, Member, Organization, Project, Workspace
from scheduler import registry

TOKEN_PREFIX = "dice_"
# Slugs that would shadow page URLs (/orgs/<org>/<project>/edit/ and so on).
RESERVED_SLUGS = frozenset({"new", "edit", "delete", "members", "projects", "apps", "workspaces", "runtimes", "settings"})


def _check_slug(slug: str, what: str) -> None:
    if slug in RESERVED_SLUGS:
        raise ValidationError({"slug": f"{slug!r} is reserved; choose another {what} slug"})


def _require(user, perm: str, obj) -> None:
    if not scope.has_perm(user, perm, obj):
        raise PermissionDenied(f"you may not {perm.replace('_', ' ')} {type(obj).__name__.lower()} {obj}")


def _save_new(obj, unique_message: str):
    obj.full_clean(validate_unique=False)
    try:
        with transaction.atomic():
            obj.save()
    except IntegrityError:
        raise ValidationError({"slug": unique_message}) from None
    return obj


def _apply_changes(user, obj, changes: dict, allowed: set[str]):
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationError(dict.fromkeys(sorted(unknown), "this field cannot be changed"))
    before = audit.snapshot(obj)
    for key, value in changes.items():
        setattr(obj, key, value)
    obj.full_clean(validate_unique=False)
    try:
        with transaction.atomic():
            obj.save()
    except IntegrityError:
        raise ValidationError({"slug": f"{obj.slug!r} is already taken"}) from None
    audit.record(user, "update", obj, before=before, after=audit.snapshot(obj))
    return obj


# ---- organizations ---------------------------------------------------------------------


def may_create_organizations(user) -> bool:
    """DICE_ORG_CREATION: "staff" (default) lets only staff create organizations; "anyone" lets any
    signed-in user create one (and become its owner)."""
    if user is None or not user.is_authenticated:
        return False
    return user.is_superuser or settings.DICE_ORG_CREATION == "anyone"


@transaction.atomic
def create_organization(user, *, slug: str, name: str = "", description: str = "", owner=None) -> Organization:
    """Create an organization; its first owner is `owner` (staff only may name another user) or the creator."""
    if not may_create_organizations(user):
        raise PermissionDenied("only staff create organizations here (DICE_ORG_CREATION=staff); ask one")
    if owner is not None and owner.pk != user.pk and not user.is_superuser:
        raise PermissionDenied("only staff create an organization for another user")
    _check_slug(slug, "organization")
    if Organization.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": f"organization {slug!r} already exists"})
    org = _save_new(
        Organization(slug=slug, name=name or slug, description=description),
        f"organization {slug!r} already exists",
    )
    Member.objects.create(user=owner or user, organization=org, role=Role.OWNER)
    audit.record(user, "create", org, after=audit.snapshot(org))
    return org


@transaction.atomic
def update_organization(user, org: Organization, **changes) -> Organization:
    _require(user, perms.CHANGE, org)
    return _apply_changes(user, org, changes, {"name", "description"})


@transaction.atomic
def delete_organization(user, org: Organization) -> None:
    _require(user, perms.DELETE, org)
    before = audit.snapshot(org)
    audit.record(user, "delete", org, before=before)
    org.delete()


# ---- projects and their workspaces ------------------------------------------------------


@transaction.atomic
def create_project(user, org: Organization, *, slug: str, name: str = "", description: str = "") -> Project:
    _require(user, perms.CHANGE, org)
    _check_slug(slug, "project")
    if org.projects.filter(slug=slug).exists():
        raise ValidationError({"slug": f"project {org.slug}/{slug} already exists"})
    project = _save_new(
        Project(organization=org, slug=slug, name=name or slug, description=description),
        f"project {org.slug}/{slug} already exists",
    )
    cluster = _default_cluster(org)
    Workspace.objects.bulk_create(Workspace(project=project, kind=k, cluster=cluster) for k in WorkspaceKind.values)
    _bind_managed_data_clusters(project, org, cluster)
    audit.record(user, "create", project, after=audit.snapshot(project))
    return project


def _bind_managed_data_clusters(project: Project, org: Organization, cluster: Cluster) -> None:
    """On the console's own `local` cluster, a new project's workspaces also get the console's
    managed data clusters (`spark-local`, made by `make run` where the engine is installed), so the
    standalone console runs Spark without setting anything up."""
    if cluster.name != LOCAL_CLUSTER_NAME:
        return
    managed = [c for c in cluster_scope.usable_by(org).filter(name__endswith="-local", api_server="")
               if registry.capabilities(c.kind).data_engine and c.name == f"{registry.capabilities(c.kind).data_engine}-local"]
    if not managed:
        return
    through = Workspace.data_clusters.through
    through.objects.bulk_create(through(workspace_id=ws, cluster_id=c.pk)
                                for ws in Workspace.objects.filter(project=project).values_list("pk", flat=True)
                                for c in managed)


def _default_cluster(org: Organization):
    """Where a new project's workspaces start: `local` when the organization may use it, else the
    first cluster it may use."""
    Cluster.local()  # always exists (created on first use)
    usable = cluster_scope.usable_by(org).order_by("name")
    cluster = usable.filter(name=LOCAL_CLUSTER_NAME).first() or usable.first()
    if cluster is None:
        raise ValidationError({"organization": f"no cluster is available to {org}: ask staff to grant one, "
                                               "or register the organization's own"})
    return cluster


@transaction.atomic
def update_project(user, project: Project, **changes) -> Project:
    _require(user, perms.CHANGE, project)
    return _apply_changes(user, project, changes, {"name", "description"})


@transaction.atomic
def delete_project(user, project: Project) -> None:
    _require(user, perms.DELETE, project)
    audit.record(user, "delete", project, before=audit.snapshot(project))
    project.delete()


@transaction.atomic
def update_workspace(user, workspace: Workspace, **changes) -> Workspace:
    _require(user, perms.CHANGE, workspace.project)
    cluster = changes.get("cluster")
    if cluster is not None and cluster.pk != workspace.cluster_id:
        if not (scope.has_perm(user, perms.MANAGE_CLUSTERS, workspace.project)
                or scope.has_perm(user, perms.MANAGE_MEMBERS, workspace.project)):
            raise PermissionDenied("you may not rebind workspaces to clusters")
        if not cluster_scope.usable_by(workspace.organization).filter(pk=cluster.pk).exists():
            raise ValidationError({"cluster": f"{workspace.organization} may not use cluster {cluster.name}: "
                                              "bind to one it owns or has been granted"})
    if "protected" in changes and bool(changes["protected"]) != workspace.protected:
        # Protecting or unprotecting: a lead or owner who may deploy there.
        _require(user, perms.MANAGE_MEMBERS, workspace.project)
        _require(user, perms.deploy_perm(workspace.kind), workspace.project)
    data_clusters = changes.pop("data_clusters", None)
    if data_clusters is not None:
        data_clusters = _check_data_clusters(user, workspace, list(data_clusters))
    before = audit.snapshot(workspace)
    before["data_clusters"] = sorted(workspace.data_clusters.values_list("name", flat=True))
    unknown = set(changes) - {"cluster", "cpu_quota", "mem_quota", "protected"}
    if unknown:
        raise ValidationError(dict.fromkeys(sorted(unknown), "this field cannot be changed"))
    with transaction.atomic():
        for key, value in changes.items():
            setattr(workspace, key, value)
        workspace.full_clean(validate_unique=False)
        workspace.save()
        if data_clusters is not None:
            workspace.data_clusters.set(data_clusters)
        after = audit.snapshot(workspace)
        after["data_clusters"] = sorted(workspace.data_clusters.values_list("name", flat=True))
        audit.record(user, "update", workspace, before=before, after=after)
    return workspace


def _check_data_clusters(user, workspace: Workspace, clusters: list) -> list:
    """Data clusters a workspace may bind: clusters of a data engine (Spark, Flink) its organization
    may use, at most one per engine (a job names its engine, not a cluster)."""
    current = set(workspace.data_clusters.values_list("pk", flat=True))
    if {c.pk for c in clusters} != current and not (
            scope.has_perm(user, perms.MANAGE_CLUSTERS, workspace.project)
            or scope.has_perm(user, perms.MANAGE_MEMBERS, workspace.project)):
        raise PermissionDenied("you may not rebind workspaces to clusters")
    usable = set(cluster_scope.usable_by(workspace.organization).filter(pk__in=[c.pk for c in clusters])
                 .values_list("pk", flat=True))
    engines: dict[str, str] = {}
    for cluster in clusters:
        if cluster.pk not in usable:
            raise ValidationError({"data_clusters": f"{workspace.organization} may not use cluster {cluster.name}: "
                                                    "bind one it owns or has been granted"})
        engine = registry.capabilities(cluster.kind).data_engine
        if not engine:
            raise ValidationError({"data_clusters": f"{cluster.name} is a {cluster.kind} cluster, not a data "
                                                    "engine's (spark, flink): bind it as the workspace's cluster"})
        if engine in engines:
            raise ValidationError({"data_clusters": f"{cluster.name} and {engines[engine]} both run {engine}: "
                                                    "bind one data cluster per engine"})
        engines[engine] = cluster.name
    return clusters


# ---- applications ----------------------------------------------------------------------


@transaction.atomic
def create_application(
    user, project: Project, *, slug: str, name: str = "", description: str = "", repo_url: str = ""
) -> Application:
    _require(user, perms.CHANGE, project)
    _check_slug(slug, "application")
    repourls.validate(repo_url)
    if project.applications.filter(slug=slug).exists():
        raise ValidationError({"slug": f"application {project}/{slug} already exists"})
    app = _save_new(
        Application(project=project, slug=slug, name=name or slug, description=description, repo_url=repo_url),
        f"application {project}/{slug} already exists",
    )
    audit.record(user, "create", app, after=audit.snapshot(app))
    return app


@transaction.atomic
def update_application(user, app: Application, **changes) -> Application:
    _require(user, perms.CHANGE, app)
    if "repo_url" in changes:
        repourls.validate(changes["repo_url"] or "")
    return _apply_changes(user, app, changes, {"name", "description", "repo_url"})


@transaction.atomic
def delete_application(user, app: Application) -> None:
    _require(user, perms.DELETE, app)
    audit.record(user, "delete", app, before=audit.snapshot(app))
    app.delete()


# ---- members ----------------------------------------------------------------------------


def _held_permissions(user, target) -> frozenset[str] | None:
    """What the user may do on target through their roles there and above; None: everything (staff)."""
    if user.is_superuser:
        return None
    return frozenset().union(*(perms.PERMISSIONS.get(r, frozenset()) for r in scope.roles_on(user, target)))


def _check_grant(user, target, role: str, verb: str) -> None:
    """Nobody grants, changes or removes a role above their own, on a scope above their own."""
    held = _held_permissions(user, target)
    if held is None or perms.role_within(role, held):
        return
    missing = sorted(perms.PERMISSIONS[role] - held)
    raise PermissionDenied(
        f"you may not {verb} the role {role} on {target}: it allows {', '.join(missing)}, which you may not"
    )


def _check_role(role: str) -> None:
    if role not in Role.values:
        raise ValidationError({"role": f"unknown role {role!r}; choose one of {', '.join(Role.values)}"})


@transaction.atomic
def add_member(user, target, *, username: str, role: str = Role.GUEST) -> Member:
    """Give `username` a role on an organization, project or application (the least role by default)."""
    _require(user, perms.MANAGE_MEMBERS, target)
    _check_role(role)
    _check_grant(user, target, role, "grant")
    try:
        member_user = get_user_model().objects.get(username=username)
    except get_user_model().DoesNotExist:
        raise ValidationError({"username": f"no user named {username!r}"}) from None
    if member_user.pk == user.pk and not user.is_superuser:
        raise PermissionDenied("you may not give yourself a role; ask another member who may grant it")
    member = Member(user=member_user, organization=target.organization, role=role)
    if isinstance(target, Project):
        member.project = target
    elif isinstance(target, Application):
        member.project, member.application = target.project, target
    try:
        with transaction.atomic():
            member.save()
    except IntegrityError:
        raise ValidationError({"username": f"{username} already has a role on {target}"}) from None
    audit.record(user, "add_member", member, after=audit.snapshot(member))
    return member


def add_member_invited(user, organization: Organization, member_user, role: str) -> Member:
    """The organization role of a person being invited (accounts.invite): same grant rules."""
    _require(user, perms.MANAGE_MEMBERS, organization)
    _check_role(role)
    _check_grant(user, organization, role, "grant")
    member = Member.objects.create(user=member_user, organization=organization, role=role)
    audit.record(user, "add_member", member, after=audit.snapshot(member))
    return member


@transaction.atomic
def change_member_role(user, member: Member, role: str) -> Member:
    _require(user, perms.MANAGE_MEMBERS, member.target)
    _check_role(role)
    if member.user_id == user.pk:
        raise PermissionDenied("you may not change your own role; ask another member who may grant it")
    _check_grant(user, member.target, member.role, "change")
    _check_grant(user, member.target, role, "grant")
    if member.role == Role.OWNER and role != Role.OWNER:
        _ensure_another_owner(member)
    before = audit.snapshot(member)
    member.role = role
    member.save(update_fields=["role"])
    audit.record(user, "change_role", member, before=before, after=audit.snapshot(member))
    revocation.access_changed(member.user_id)
    return member


@transaction.atomic
def remove_member(user, member: Member) -> None:
    """Remove a membership; anyone may leave, only someone holding at least that role may remove it."""
    if member.user_id != user.pk:
        _require(user, perms.MANAGE_MEMBERS, member.target)
        _check_grant(user, member.target, member.role, "remove")
    if member.role == Role.OWNER:
        _ensure_another_owner(member)
    audit.record(user, "remove_member", member, before=audit.snapshot(member))
    member.delete()
    revocation.access_changed(member.user_id)


def _ensure_another_owner(member: Member) -> None:
    if member.level != "organization":
        return
    others = Member.objects.filter(
        organization=member.organization, project__isnull=True, application__isnull=True, role=Role.OWNER
    ).exclude(pk=member.pk)
    if not others.exists():
        raise ValidationError({"role": f"{member.organization} must keep at least one owner"})


# ---- API tokens -------------------------------------------------------------------------


def create_token(user, *, name: str, key: str | None = None, expires=None) -> tuple[ApiToken, str]:
    """Create a token; returns it and the plain key, which is never stored and shown only now."""
    key = key or TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=key[:12], digest=ApiToken.hash_key(key), expires=expires
    )
    audit.record(user, "create", token, after=audit.snapshot(token))
    return token, key


def revoke_token(user, token: ApiToken) -> None:
    if token.user_id != user.pk and not user.is_superuser:
        raise PermissionDenied("you may only revoke your own tokens")
    audit.record(user, "revoke", token, before=audit.snapshot(token))
    token.delete()
    revocation.access_changed(token.user_id)


def authenticate_token(key: str):
    """The user of a valid, unexpired token, or None. Touches last_used at most once a minute."""
    try:
        token = ApiToken.objects.select_related("user").get(digest=ApiToken.hash_key(key))
    except ApiToken.DoesNotExist:
        return None
    now = timezone.now()
    if token.expires and token.expires <= now:
        return None
    if not token.user.is_active:
        return None
    if token.last_used is None or (now - token.last_used).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used=now)
    return token.user
