"""Guestbook API: GET/POST /entries, kept in a Redis list (the addon's REDIS_* variables)."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from resp import Redis, RedisError

KEY = "guestbook:entries"
MAX_ENTRIES = 100


def redis() -> Redis:
    return Redis(os.environ.get("REDIS_HOST", "127.0.0.1"), int(os.environ.get("REDIS_PORT", "6379")),
                 os.environ.get("REDIS_PASSWORD", ""))


class Handler(BaseHTTPRequestHandler):
    server_version = "guestbook-api/1.0"

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        try:
            with redis() as db:
                if self.path == "/healthz":
                    return self._send(200, {"redis": db.call("PING"), "pid": os.getpid()})
                if self.path == "/entries":
                    entries = [json.loads(e) for e in db.call("LRANGE", KEY, 0, -1)]
                    return self._send(200, {"entries": entries, "served_by": f"{socket.gethostname()}/{os.getpid()}"})
        except (OSError, RedisError) as exc:
            return self._send(503, {"error": f"redis: {exc}"})
        self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        if self.path != "/entries":
            return self._send(404, {"error": "not found"})
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            text = str(body["text"]).strip()[:500]
        except (ValueError, KeyError, TypeError):
            return self._send(400, {"error": "send {\"text\": ...}"})
        if not text:
            return self._send(400, {"error": "empty entry"})
        entry = {"text": text, "at": time.time()}
        try:
            with redis() as db:
                db.call("RPUSH", KEY, json.dumps(entry))
                db.call("LTRIM", KEY, -MAX_ENTRIES, -1)
        except (OSError, RedisError) as exc:
            return self._send(503, {"error": f"redis: {exc}"})
        self._send(201, entry)

    def log_message(self, fmt: str, *args) -> None:
        print(f"{self.address_string()} {fmt % args}", flush=True)


def main() -> None:
    if "--count" in sys.argv:  # the scheduled job
        with redis() as db:
            print(f"{db.call('LLEN', KEY)} entries")
        return
    port = int(os.environ.get("PORT", "8081"))
    server = ThreadingHTTPServer(("0.0.0.0" if "PORT" not in os.environ else "127.0.0.1", port), Handler)
    print(f"api listening on {socket.gethostname()}:{port} (redis {os.environ.get('REDIS_HOST')}:"
          f"{os.environ.get('REDIS_PORT')})", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
