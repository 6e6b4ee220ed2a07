"""The console's ASGI application (HTTP and WebSockets) served by uvicorn in a thread of the test
process, on the test database: what `manage.py standalone` serves, minus its worker (tests start
theirs with the `engine` fixture). pytest-django's live_server speaks WSGI only, so pages that
need /ws/ (the log viewer) use this one."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest


class AsgiServer:
    def __init__(self):
        # Bound here and handed to uvicorn: no other process can take the port in between.
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = None
        self.thread = None
        self.error: BaseException | None = None
        self._conn_max_age = 0

    def start(self, timeout: float = 20.0) -> None:
        import uvicorn
        from django.db import connections

        # Django serves each ASGI request in a thread of its own: a persistent connection would
        # outlive it and keep a database session open past the test database's teardown.
        settings_dict = connections["default"].settings_dict
        self._conn_max_age = settings_dict.get("CONN_MAX_AGE", 0)
        settings_dict["CONN_MAX_AGE"] = 0

        config = uvicorn.Config("dice_console.asgi:application", host="127.0.0.1", port=self.port,
                                lifespan="off", log_level="warning", ws="websockets-sansio")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="asgi-live-server", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if self.error is not None or not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the ASGI test server did not start: {self.error!r}")
            time.sleep(0.02)

    def _run(self) -> None:
        from dice_console import realtime

        async def serve():
            # As in standalone: pushes from the worker's threads go through this loop, the only
            # one whose InMemoryChannelLayer groups reach the WebSocket consumers.
            realtime.register_server_loop(asyncio.get_running_loop())
            try:
                await self.server.serve(sockets=[self.socket])
            finally:
                realtime.register_server_loop(None)

        try:
            asyncio.run(serve())
        except BaseException as exc:
            self.error = exc

    def stop(self, timeout: float = 10.0) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout)
        from asgiref.sync import SyncToAsync
        from django.db import connections

        executor = getattr(SyncToAsync, "single_thread_executor", None)  # the consumers' DB thread
        if executor is not None:
            executor.submit(connections.close_all).result(timeout)
        connections["default"].settings_dict["CONN_MAX_AGE"] = self._conn_max_age
        self.socket.close()
        # The next server runs another loop: it gets channel layers of its own. Channels' Redis
        # layer refuses receives from a second loop while one of the stopped loop's consumers is
        # still counted as receiving (a process serves one loop in production).
        from channels.layers import channel_layers

        channel_layers.backends.clear()


@pytest.fixture
def asgi_server(transactional_db):
    server = AsgiServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()
