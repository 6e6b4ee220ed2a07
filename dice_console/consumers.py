"""A per-user event stream over WebSocket: audit events of the user's organizations, pushed live."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.projects import scope
from apps.projects.audit import ALL_EVENTS_GROUP


class EventsConsumer(AsyncJsonWebsocketConsumer):
    """Joins one group per organization the user can see; refuses anonymous connections."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        if user.is_superuser:
            # Superusers see every organization, including ones created after they connected.
            self.groups_joined = [ALL_EVENTS_GROUP]
        else:
            self.groups_joined = [f"org-events-{pk}" for pk in await self._org_ids(user)]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "all": user.is_superuser, "organizations": len(self.groups_joined)})

    async def disconnect(self, code):
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def audit_event(self, message):
        await self.send_json({"type": "audit", "event": message["event"]})

    @database_sync_to_async
    def _org_ids(self, user):
        return list(scope.organizations_for(user).values_list("pk", flat=True))
