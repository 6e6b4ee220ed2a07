"""Channels: the events consumer authenticates and scopes; pushes arrive from any thread.
Celery: a task sent through the configured broker is consumed by an embedded worker.
Both run on the in-process layers and, with REDIS_URL, on Redis."""

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings


def run_async(coroutine_fn):
    """asyncio.run in a thread of its own: the session's Playwright keeps a loop running in this one."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine_fn()).result()


async def _connect_as(user):
    from channels.routing import URLRouter

    from dice_console.routing import websocket_urlpatterns

    # Bypass the cookie session: put the user in the scope directly, as AuthMiddleware would.
    comm = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/events/")
    comm.scope["user"] = user
    connected, code = await comm.connect()
    return comm, connected, code


@pytest.mark.django_db(transaction=True)
def test_events_consumer_receives_only_own_organization(tenant_a, tenant_b):
    from apps.projects import services

    async def scenario():
        comm, connected, _ = await _connect_as(tenant_a.owner)
        assert connected
        hello = await comm.receive_json_from(timeout=5)
        assert hello == {"type": "hello", "all": False, "organizations": 1}
        await sync_to_async(services.update_project)(tenant_b.owner, tenant_b.project, description="theirs")
        await sync_to_async(services.update_project)(tenant_a.owner, tenant_a.project, description="mine")
        message = await comm.receive_json_from(timeout=5)
        assert message["event"]["object_repr"] == str(tenant_a.project)
        assert await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()

    run_async(scenario)


def test_anonymous_websocket_is_refused():
    from django.contrib.auth.models import AnonymousUser

    async def scenario():
        from tests.logs_helpers import refused_code

        comm, connected, _ = await _connect_as(AnonymousUser())
        assert connected  # accepted, so that the close code reaches the client (not HTTP 403)
        assert await refused_code(comm) == 4401

    run_async(scenario)


def test_group_send_from_a_worker_thread_reaches_the_server_loop():
    """The standalone fact: sends from worker threads are scheduled onto the registered server loop."""
    from dice_console import realtime

    async def scenario():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add("t-group", channel)
        realtime.register_server_loop(asyncio.get_running_loop())
        try:
            thread = threading.Thread(
                target=lambda: [realtime.group_send("t-group", {"type": "x", "n": i}) for i in range(200)]
            )
            await asyncio.get_running_loop().run_in_executor(None, thread.start)
            got = [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(200)]
            await asyncio.get_running_loop().run_in_executor(None, thread.join)
        finally:
            realtime.register_server_loop(None)
        assert [m["n"] for m in got] == list(range(200))

    run_async(scenario)


def test_embedded_worker_consumes_from_the_configured_broker():
    from dice_console.celery import app
    from dice_console.embedded import EmbeddedWorker
    from dice_console.tasks import ping

    worker = EmbeddedWorker(app, with_beat=False)
    worker.start()
    try:
        assert ping.delay().get(timeout=20) == "pong"
    finally:
        worker.stop()


@pytest.mark.redis
def test_redis_is_the_broker_and_channel_layer_in_production_mode():
    assert settings.CELERY_BROKER_URL.startswith("redis://")
    assert "Redis" in settings.CHANNEL_LAYERS["default"]["BACKEND"]


@pytest.mark.postgres
def test_postgres_is_the_database(db):
    from django.db import connection

    assert connection.vendor == "postgresql"


def test_a_thread_without_a_loop_sends_on_one_loop_of_its_own():
    """Without a server loop (a worker process), each thread keeps one private loop for its sends
    instead of a new thread and loop per send; what is sent reaches the layer (Redis in CI)."""
    from dice_console import realtime

    layer = get_channel_layer()

    def in_thread(fn):  # this thread may run a loop left by an earlier test: stay off it
        out = []
        thread = threading.Thread(target=lambda: out.append(fn()))
        thread.start()
        thread.join(10)
        return out[0] if out else None

    async def subscribe():
        channel = await layer.new_channel()
        await layer.group_add("t-own-loop", channel)
        return channel

    channel = in_thread(lambda: asyncio.run(subscribe()))
    loops = in_thread(lambda: [realtime.group_send("t-own-loop", {"type": "x", "n": i}) or realtime._thread.loop
                               for i in range(3)])
    assert loops and len(loops) == 3 and loops[0] is loops[1] is loops[2]
    if "Redis" in settings.CHANNEL_LAYERS["default"]["BACKEND"]:
        async def receive_all():
            return [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(3)]

        assert in_thread(lambda: asyncio.run(receive_all())) == [0, 1, 2]
