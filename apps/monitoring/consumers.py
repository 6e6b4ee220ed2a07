"""WebSocket of a cluster's node usage: tells the cluster page when a collection stored new node
samples (apps.monitoring.metrics.collect_nodes pushes to the cluster's group after the commit)."""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.clusters.scope import clusters_for
from apps.monitoring.metrics import cluster_group
from dice_console.wsaccess import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED, FollowsAccess, refuse


class ClusterUsageConsumer(FollowsAccess, AsyncJsonWebsocketConsumer):
    """/ws/clusters/<id>/usage/: refuses anonymous users (4401) and clusters they may not use (4404);
    closes (4403) when the user's token or access to the cluster is revoked while it is open."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await refuse(self, CLOSE_UNAUTHENTICATED)
            return
        cluster_id = int(self.scope["url_route"]["kwargs"]["cluster_id"])
        if not await database_sync_to_async(self._visible)(user, cluster_id):
            await refuse(self, CLOSE_NOT_FOUND)
            return
        self.cluster_id = cluster_id
        self.group = cluster_group(cluster_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.follow_access()

    def still_allowed_sync(self) -> bool:
        return self._visible(self.scope["user"], self.cluster_id)

    async def disconnect(self, code):
        await self.unfollow_access()
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def metrics_sampled(self, message):
        await self.send_json({k: v for k, v in message.items() if k != "type"} | {"type": "metrics"})

    @staticmethod
    def _visible(user, cluster_id: int) -> bool:
        return clusters_for(user).filter(pk=cluster_id).exists()
