"""Services of user accounts: invitations (a one-time link sets the password) and the staff's
users API. Like services.py, the one place that changes this state, for pages, API and CLI."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from apps.projects import audit, revocation, scope
from apps.projects import services as tenancy
from apps.projects.choices import Role
from apps.projects.models import ApiToken, Invitation, Member, Organization

INVITATION_DAYS = 7
USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@.+-_")


def may_invite(user, organization: Organization | None) -> bool:
    """Staff invite anyone; an organization's owners invite into their organization."""
    if user is None or not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    return organization is not None and Role.OWNER in scope.roles_on(user, organization)


@transaction.atomic
def invite(user, *, username: str, email: str = "", organization: Organization | None = None,
           role: str = Role.GUEST) -> tuple[Invitation, str]:
    """Make the account (inactive, no password) and its invitation; returns it and the link's key,
    which is stored only as a hash and shown only now."""
    if not may_invite(user, organization):
        raise PermissionDenied("only staff, or an organization's owners into their organization, invite people")
    username = username.strip()
    if not username or set(username) - USERNAME_CHARS or len(username) > 150:
        raise ValidationError({"username": "letters, digits and @ . + - _ only (at most 150)"})
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise ValidationError({"email": f"{email!r} is not an e-mail address"}) from None
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        raise ValidationError({"username": f"{username} already has an account: add them as a member instead"})
    member_user = User(username=username, email=email, is_active=False)
    member_user.set_unusable_password()
    member_user.save()
    if organization is not None:
        tenancy.add_member_invited(user, organization, member_user, role)
    key = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        user=member_user, organization=organization, role=role if organization is not None else Role.GUEST,
        digest=_digest(key), created_by=user, expires=timezone.now() + timedelta(days=INVITATION_DAYS),
    )
    audit.record(user, "invite", invitation, after={"username": username, "email": email,
                                                    "organization": organization.slug if organization else None,
                                                    "role": invitation.role})
    return invitation, key


def _digest(key: str) -> str:
    return ApiToken.hash_key(key)


def find_invitation(key: str) -> Invitation:
    """The open invitation of a link's key, or a ValidationError saying why the link is dead."""
    invitation = Invitation.objects.select_related("user", "organization").filter(digest=_digest(key)).first()
    if invitation is None:
        raise ValidationError("this invitation link is not valid")
    if invitation.accepted is not None:
        raise ValidationError("this invitation link was used already")
    if invitation.expires <= timezone.now():
        raise ValidationError("this invitation link has expired: ask for a new one")
    return invitation


@transaction.atomic
def accept(key: str, password: str):
    """Set the password chosen through the link, activate the account; the link is spent."""
    invitation = find_invitation(key)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted is not None:
        raise ValidationError("this invitation link was used already")
    user = invitation.user
    password_validation.validate_password(password, user)
    user.set_password(password)
    user.is_active = True
    user.save(update_fields=["password", "is_active"])
    invitation.accepted = timezone.now()
    invitation.save(update_fields=["accepted"])
    audit.record(user, "accept", invitation, after={"username": user.username})
    return user


@transaction.atomic
def revoke_invitation(user, invitation: Invitation) -> None:
    if not may_invite(user, invitation.organization):
        raise PermissionDenied("you may not revoke this invitation")
    if invitation.accepted is not None:
        raise ValidationError({"detail": "the invitation was accepted already; deactivate the user instead"})
    audit.record(user, "revoke", invitation, before={"username": invitation.user.username})
    invited = invitation.user
    invitation.delete()
    if not invited.has_usable_password() and not invited.is_active:
        invited.delete()  # the account never existed for its owner


def invitations_for(user):
    if user is None or not user.is_authenticated:
        return Invitation.objects.none()
    if user.is_superuser:
        return Invitation.objects.all()
    owned = Member.objects.filter(user=user, project__isnull=True, application__isnull=True, role=Role.OWNER)
    return Invitation.objects.filter(organization__in=owned.values("organization"))


# ---- the users API (staff) ----------------------------------------------------------------------

USER_FIELDS = {"email", "first_name", "last_name", "is_active", "is_staff", "is_superuser"}


def require_staff(user) -> None:
    if user is None or not user.is_authenticated or not user.is_superuser:
        raise PermissionDenied("only staff manage users")


@transaction.atomic
def update_user(user, target, **changes):
    require_staff(user)
    unknown = set(changes) - USER_FIELDS
    if unknown:
        raise ValidationError(dict.fromkeys(sorted(unknown), "this field cannot be changed"))
    if target.pk == user.pk and ({"is_active", "is_superuser", "is_staff"} & set(changes)):
        raise PermissionDenied("you may not change your own staff status or deactivate yourself")
    before = {k: getattr(target, k) for k in changes}
    for key, value in changes.items():
        setattr(target, key, value)
    target.full_clean(exclude=["password", "username"])
    target.save(update_fields=list(changes))
    audit.record(user, "update", target, before=before, after={k: getattr(target, k) for k in changes})
    if changes.get("is_active") is False:
        revocation.access_changed(target.pk)  # open sockets of a deactivated user close
    return target
