"""The one place that changes tenancy state; views, API, admin and CLI all come through here."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.clusters.models import Cluster
from apps.projects import audit, repourls, scope
from apps.projects import permissions as perms
from apps.projects.choices import Role, WorkspaceKind
from apps.projects.models import ApiToken, Application, Member, Organization, Project, Workspace

TOKEN_PREFIX = "dice_"
# Slugs that would shadow page URLs (/orgs/<org>/<project>/edit/ and so on).
RESERVED_SLUGS = frozenset({"new", "edit", "delete", "members", "projects", "apps", "workspaces", "runtimes"})


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


@transaction.atomic
def create_organization(user, *, slug: str, name: str = "", description: str = "") -> Organization:
    _check_slug(slug, "organization")
    if Organization.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": f"organization {slug!r} already exists"})
    org = _save_new(
        Organization(slug=slug, name=name or slug, description=description),
        f"organization {slug!r} already exists",
    )
    Member.objects.create(user=user, organization=org, role=Role.OWNER)
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
    local = Cluster.local()
    Workspace.objects.bulk_create(Workspace(project=project, kind=k, cluster=local) for k in WorkspaceKind.values)
    audit.record(user, "create", project, after=audit.snapshot(project))
    return project


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
    if "cluster" in changes and not scope.can_manage_clusters(user) and not scope.has_perm(
        user, perms.MANAGE_MEMBERS, workspace.project
    ):
        raise PermissionDenied("you may not rebind workspaces to clusters")
    before = audit.snapshot(workspace)
    unknown = set(changes) - {"cluster", "cpu_quota", "mem_quota"}
    if unknown:
        raise ValidationError(dict.fromkeys(sorted(unknown), "this field cannot be changed"))
    for key, value in changes.items():
        setattr(workspace, key, value)
    workspace.full_clean(validate_unique=False)
    workspace.save()
    audit.record(user, "update", workspace, before=before, after=audit.snapshot(workspace))
    return workspace


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


@transaction.atomic
def add_member(user, target, *, username: str, role: str) -> Member:
    """Give `username` a role on an organization, project or application."""
    _require(user, perms.MANAGE_MEMBERS, target)
    if role not in Role.values:
        raise ValidationError({"role": f"unknown role {role!r}; choose one of {', '.join(Role.values)}"})
    try:
        member_user = get_user_model().objects.get(username=username)
    except get_user_model().DoesNotExist:
        raise ValidationError({"username": f"no user named {username!r}"}) from None
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


@transaction.atomic
def change_member_role(user, member: Member, role: str) -> Member:
    _require(user, perms.MANAGE_MEMBERS, member.target)
    if role not in Role.values:
        raise ValidationError({"role": f"unknown role {role!r}; choose one of {', '.join(Role.values)}"})
    if member.role == Role.OWNER and role != Role.OWNER:
        _ensure_another_owner(member)
    before = audit.snapshot(member)
    member.role = role
    member.save(update_fields=["role"])
    audit.record(user, "change_role", member, before=before, after=audit.snapshot(member))
    return member


@transaction.atomic
def remove_member(user, member: Member) -> None:
    _require(user, perms.MANAGE_MEMBERS, member.target)
    if member.role == Role.OWNER:
        _ensure_another_owner(member)
    audit.record(user, "remove_member", member, before=audit.snapshot(member))
    member.delete()


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
