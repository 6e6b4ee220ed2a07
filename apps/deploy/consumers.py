"""WebSocket of one runtime: its deployments' status and per-service progress, pushed live
(apps.deploy.deployments sends them to the `runtime-<id>` group after each commit)."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.deploy.lifecycle import runtime_group
from apps.deploy.models import Runtime
from apps.projects import scope
from dice_console.wsaccess import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED, FollowsAccess, refuse


class RuntimeProgressConsumer(FollowsAccess, AsyncJsonWebsocketConsumer):
    """/ws/runtimes/<id>/: refuses anonymous users (4401) and runtimes outside their scope (4404);
    closes (4403) when the user's token or access to the runtime is revoked while it is open."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await refuse(self, CLOSE_UNAUTHENTICATED)
            return
        runtime_id = int(self.scope["url_route"]["kwargs"]["runtime_id"])
        if not await self._visible(user, runtime_id):
            await refuse(self, CLOSE_NOT_FOUND)
            return
        self.runtime_id = runtime_id
        self.group = runtime_group(runtime_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.follow_access()

    def still_allowed_sync(self) -> bool:
        return scope.scoped(self.scope["user"], Runtime).filter(pk=self.runtime_id).exists()

    async def disconnect(self, code):
        await self.unfollow_access()
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def deployment_progress(self, message):
        await self.send_json({k: v for k, v in message.items() if k != "type"} | {"type": "progress"})

    async def runtime_changed(self, message):
        await self.send_json({k: v for k, v in message.items() if k != "type"} | {"type": "changed"})

    async def metrics_sampled(self, message):
        """A collection stored new samples (apps.monitoring): the page's graphs refresh."""
        await self.send_json({k: v for k, v in message.items() if k != "type"} | {"type": "metrics"})

    @database_sync_to_async
    def _visible(self, user, runtime_id: int) -> bool:
        return scope.scoped(user, Runtime).filter(pk=runtime_id).exists()
