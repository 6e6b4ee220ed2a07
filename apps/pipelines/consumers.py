"""WebSocket of one pipeline run: its moves and its tasks', pushed after each commit
(apps.pipelines.states sends them to the `pipeline-run-<id>` group). The run page fetches the
rows named in a push and replaces them in place (static/dice/run.js) instead of reloading."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.pipelines.models import PipelineRun
from apps.pipelines.states import run_group
from apps.projects import scope
from dice_console.wsaccess import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED, FollowsAccess, refuse


class PipelineRunConsumer(FollowsAccess, AsyncJsonWebsocketConsumer):
    """/ws/runs/<id>/: refuses anonymous users (4401) and runs outside their scope (4404); closes
    (4403) when the user's token or access to the run is revoked while it is open. Sends
    {"type": "tasks", "tasks": [[alias, status], ...]} and {"type": "changed", "status": ...}."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await refuse(self, CLOSE_UNAUTHENTICATED)
            return
        run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        if not await self._visible(user, run_id):
            await refuse(self, CLOSE_NOT_FOUND)
            return
        self.run_id = run_id
        self.group = run_group(run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.follow_access()

    def still_allowed_sync(self) -> bool:
        return scope.scoped(self.scope["user"], PipelineRun).filter(pk=self.run_id).exists()

    async def disconnect(self, code):
        await self.unfollow_access()
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def run_tasks(self, message):
        await self.send_json({"type": "tasks", "tasks": message.get("tasks") or []})

    async def run_changed(self, message):
        await self.send_json({"type": "changed", "status": message.get("status", "")})

    @database_sync_to_async
    def _visible(self, user, run_id: int) -> bool:
        return scope.scoped(user, PipelineRun).filter(pk=run_id).exists()
