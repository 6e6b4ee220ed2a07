"""Shared pieces of the log tests: a task run to write to, a consumer to talk to."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from channels.testing import WebsocketCommunicator


def run_async(coroutine_fn):
    """asyncio.run in a thread of its own: the session's Playwright keeps a loop running in this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine_fn()).result()


def make_task_run(tenant, alias: str = "build", status: str = "running"):
    from apps.pipelines.models import PipelineRun, TaskRun

    run = PipelineRun.objects.create(application=tenant.app, source="version: '1.1'\n", status="running")
    return TaskRun.objects.create(run=run, alias=alias, type="custom-script", status=status)


async def refused_code(comm) -> int:
    """The close code of a socket refused while connecting: consumers accept, then close at once
    (dice_console.wsaccess.refuse), since a close before the accept reaches a client as HTTP 403."""
    output = await comm.receive_output(timeout=10)
    assert output["type"] == "websocket.close", output
    return output["code"]


async def connect_logs(user=None, *, token: str | None = None, headers=None, subprotocols=None):
    from channels.auth import AuthMiddlewareStack
    from channels.routing import URLRouter

    from apps.logs.wsauth import TokenAuthMiddleware
    from dice_console.routing import websocket_urlpatterns

    path = "/ws/logs/" + (f"?token={token}" if token else "")
    inner = TokenAuthMiddleware(URLRouter(websocket_urlpatterns))
    # With a user given, bypass the cookie session and put the user in the scope, as AuthMiddleware would.
    app = inner if user is not None else AuthMiddlewareStack(inner)
    comm = WebsocketCommunicator(app, path, headers=headers or [], subprotocols=subprotocols)
    if user is not None:
        comm.scope["user"] = user
    connected, code = await comm.connect()
    return comm, connected, code
