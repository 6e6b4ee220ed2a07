"""Open WebSockets follow revocation: when a user's memberships change, a token is revoked or the
user is deactivated, a message goes to the user's group and each of their sockets re-checks its
access at once (closing with 4403 when it is gone)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from apps.projects.models import ApiToken

# Close code of a socket whose user or token lost its access while it was open.
CLOSE_REVOKED = 4403


def user_group(user_id: int) -> str:
    return f"user-access-{user_id}"


def access_changed(user_id: int) -> None:
    """Tell the user's open sockets to re-check, after the change commits."""

    def push():
        from dice_console.realtime import group_send

        group_send(user_group(user_id), {"type": "access.changed"})

    transaction.on_commit(push)


def credentials_valid(user, token_digest: str | None) -> bool:
    """The socket's user is still active and, for a token socket, the token still exists and is unexpired."""
    if user is None or not user.is_authenticated:
        return False
    if token_digest is None:
        return get_user_model().objects.filter(pk=user.pk, is_active=True).exists()
    token = ApiToken.objects.filter(digest=token_digest, user_id=user.pk, user__is_active=True).only("expires").first()
    return token is not None and (token.expires is None or token.expires > timezone.now())
