"""WebSocket of one runtime: its deployments' status and per-service progress, pushed live
(apps.deploy.deployments sends them to the `runtime-<id>` group after each commit)."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.deploy.lifecycle import runtime_group
from apps.deploy.models import Runtime
from apps.projects import scope


class RuntimeProgressConsumer(AsyncJsonWebsocketConsumer):
    """/ws/runtimes/<id>/: refuses anonymous users (4401) and runtimes outside their scope (4404)."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        runtime_id = int(self.scope["url_route"]["kwargs"]["runtime_id"])
        if not await self._visible(user, runtime_id):
            await self.close(code=4404)
            return
        self.group = runtime_group(runtime_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def deployment_progress(self, message):
        await self.send_json({k: v for k, v in message.items() if k != "type"} | {"type": "progress"})

    async def runtime_changed(self, message):
        await self.send_json({k: v for k, v in message.items() if k != "type"} | {"type": "changed"})

    @database_sync_to_async
    def _visible(self, user, runtime_id: int) -> bool:
        return scope.scoped(user, Runtime).filter(pk=runtime_id).exists()
