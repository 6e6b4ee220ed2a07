"""A per-user event stream over WebSocket: audit events the user may see, pushed live."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.projects import scope
from apps.projects.audit import ALL_EVENTS_GROUP
from apps.projects.revocation import CLOSE_REVOKED, credentials_valid
from dice_console.wsaccess import CLOSE_UNAUTHENTICATED, FollowsAccess, refuse


class EventsConsumer(FollowsAccess, AsyncJsonWebsocketConsumer):
    """Joins one group per organization the user can see; refuses anonymous connections.

    Every push is checked against the user's current scope and credentials before it is sent (one
    indexed query), so a removed member or a revoked token stops receiving at once; a change of
    the user's access closes the socket with 4403 when nothing is left to see."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await refuse(self, CLOSE_UNAUTHENTICATED)
            return
        if user.is_superuser:
            # Superusers see every organization, including ones created after they connected.
            self.groups_joined = [ALL_EVENTS_GROUP]
        else:
            self.groups_joined = [f"org-events-{pk}" for pk in await self._org_ids(user)]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.follow_access()
        await self.send_json({"type": "hello", "all": user.is_superuser, "organizations": len(self.groups_joined)})

    async def disconnect(self, code):
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)
        await self.unfollow_access()

    async def audit_event(self, message):
        visible = await self._visible(message["event"]["id"])
        if visible is None:
            await self.close(code=CLOSE_REVOKED)
        elif visible:
            await self.send_json({"type": "audit", "event": message["event"]})

    def still_allowed_sync(self) -> bool:
        user = self.scope["user"]
        return user.is_superuser or scope.organizations_for(user).exists()

    @database_sync_to_async
    def _visible(self, event_id: int) -> bool | None:
        """True: send it; False: not for this user; None: the socket's credentials are gone."""
        user = self.scope["user"]
        if not credentials_valid(user, self.scope.get("token_digest")):
            return None
        return scope.audit_events_for(user).filter(pk=event_id).exists()

    @database_sync_to_async
    def _org_ids(self, user):
        return list(scope.organizations_for(user).values_list("pk", flat=True))
