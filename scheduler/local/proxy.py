"""A service's stable front port: a small threaded TCP proxy over its ready replicas."""

from __future__ import annotations

import contextlib
import itertools
import selectors
import socket
import threading
import time

CONNECT_TIMEOUT = 2.0
WAIT_FOR_BACKEND = 5.0  # seconds a client waits for a ready replica before it is closed
BUFFER = 65536


class FrontProxy:
    """Listens on 127.0.0.1:<port> and forwards each connection to the next ready backend
    (round robin); the supervisor updates the backends as replicas become ready or go away."""

    def __init__(self, name: str, port: int) -> None:
        self.name, self.port = name, port
        self._backends: list[int] = []
        self._cycle = itertools.count()
        self._changed = threading.Condition()
        self._closed = False
        # What the proxy sees of its traffic (counters since it started): connections forwarded,
        # and for those the backend answered, the time from the client's first byte to the backend's.
        self.connections = 0
        self.replies = 0
        self.first_byte_seconds = 0.0
        self._counting = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))  # OSError when someone else holds it
        self._listener.listen(128)
        self._thread = threading.Thread(target=self._serve, name=f"dice-local-proxy-{name}", daemon=True)
        self._thread.start()

    @property
    def backends(self) -> list[int]:
        return list(self._backends)

    def set_backends(self, ports: list[int]) -> None:
        with self._changed:
            self._backends = list(ports)
            self._changed.notify_all()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._changed:
            self._changed.notify_all()
        self._thread.join(timeout=2)

    def _serve(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _pick(self) -> list[int]:
        """Backends in the order to try, waiting a little when there is none yet."""
        deadline = time.monotonic() + WAIT_FOR_BACKEND
        with self._changed:
            while not self._backends and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._changed.wait(left)
            ports = list(self._backends)
        if not ports:
            return []
        start = next(self._cycle) % len(ports)
        return ports[start:] + ports[:start]

    def _handle(self, client: socket.socket) -> None:
        upstream = None
        for port in self._pick():
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT)
                break
            except OSError:
                continue
        if upstream is None:
            client.close()
            return
        upstream.settimeout(None)
        with self._counting:
            self.connections += 1
        _pump(client, upstream, self._replied)

    def _replied(self, seconds: float) -> None:
        with self._counting:
            self.replies += 1
            self.first_byte_seconds += seconds

    def traffic(self) -> dict[str, float]:
        with self._counting:
            return {"connections": self.connections, "replies": self.replies,
                    "first_byte_seconds": self.first_byte_seconds}


def _pump(a: socket.socket, b: socket.socket, replied=None) -> None:
    """Copy bytes both ways until both sides are done (half-closes are passed on). `replied`
    hears the seconds from a's first byte to b's first byte (a request's time to first response)."""
    asked = answered = None
    sel = selectors.DefaultSelector()
    peers = {a: b, b: a}
    open_reads = {a, b}
    for sock in open_reads:
        sel.register(sock, selectors.EVENT_READ)
    try:
        while open_reads:
            for key, _ in sel.select(timeout=60):
                src = key.fileobj
                try:
                    data = src.recv(BUFFER)  # type: ignore[union-attr]
                except OSError:
                    data = b""
                dst = peers[src]  # type: ignore[index]
                if data and src is a and asked is None:
                    asked = time.monotonic()
                elif data and src is b and answered is None and asked is not None:
                    answered = time.monotonic()
                    if replied is not None:
                        replied(answered - asked)
                if data:
                    try:
                        dst.sendall(data)
                        continue
                    except OSError:
                        return
                sel.unregister(src)
                open_reads.discard(src)  # type: ignore[arg-type]
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)
    finally:
        sel.close()
        a.close()
        b.close()
