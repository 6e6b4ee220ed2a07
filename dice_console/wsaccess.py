"""A consumer mixin: the socket joins its user's access group and closes with 4403 as soon as its
credentials or its access to what it streams are gone (apps/projects/revocation.py)."""

from __future__ import annotations

from channels.db import database_sync_to_async

from apps.projects.revocation import CLOSE_REVOKED, credentials_valid, user_group

CLOSE_UNAUTHENTICATED = 4401  # sign in (no session, a bad or expired token)
CLOSE_NOT_FOUND = 4404  # no such thing, or not yours: the two are not told apart
TOKEN_PROTOCOL_PREFIX = "dice-token."  # apps/logs/wsauth.py: a browser's token as a subprotocol


async def refuse(consumer, code: int) -> None:
    """Refuse a socket with a close code the client can read. Closing before the handshake makes the
    ASGI server answer HTTP 403, whatever the code, so a client could not tell "sign in" (4401)
    from "not found or not yours" (4404): accept, then close at once (nothing is sent between).
    The accept names the token subprotocol the client offered, as an accepted socket's does:
    browsers fail a handshake that ignores the protocols they offered, and the code is lost."""
    offered = [p for p in consumer.scope.get("subprotocols", []) or [] if p.startswith(TOKEN_PROTOCOL_PREFIX)]
    await consumer.accept(subprotocol=offered[0] if offered else None)
    await consumer.close(code=code)


class FollowsAccess:
    """For AsyncJsonWebsocketConsumer subclasses. Call `follow_access()` after accepting and
    `unfollow_access()` on disconnect; override `still_allowed_sync()` to re-check what the socket
    streams (it runs in a database thread)."""

    async def follow_access(self) -> None:
        user = self.scope["user"]
        self._access_group = user_group(user.pk)
        await self.channel_layer.group_add(self._access_group, self.channel_name)

    async def unfollow_access(self) -> None:
        group = getattr(self, "_access_group", None)
        if group is not None:
            await self.channel_layer.group_discard(group, self.channel_name)

    def still_allowed_sync(self) -> bool:
        return True

    def _check_sync(self) -> bool:
        return credentials_valid(self.scope["user"], self.scope.get("token_digest")) and self.still_allowed_sync()

    async def access_ok(self) -> bool:
        return await database_sync_to_async(self._check_sync)()

    async def access_changed(self, message) -> None:
        if not await self.access_ok():
            await self.close(code=CLOSE_REVOKED)
