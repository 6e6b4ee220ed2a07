"""Guestbook front end: renders the entries it fetches from the API, posts new ones to it."""

from __future__ import annotations

import html
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TITLE = os.environ.get("GUESTBOOK_TITLE", "Guestbook")


def api_url(path: str) -> str:
    return f"http://{os.environ.get('API_HOST', '127.0.0.1')}:{os.environ.get('API_PORT', '8081')}{path}"


def call_api(path: str, payload: dict | None = None) -> dict:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(api_url(path), data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


class Handler(BaseHTTPRequestHandler):
    server_version = "guestbook-front/1.0"

    def _html(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            return self._html(200, "ok")
        if self.path != "/":
            return self._html(404, "not found")
        try:
            data = call_api("/entries")
        except (OSError, urllib.error.URLError, ValueError) as exc:
            return self._html(502, f"<h1>{html.escape(TITLE)}</h1><p>the API is not answering: "
                                   f"{html.escape(str(exc))}</p>")
        items = "".join(f"<li>{html.escape(e['text'])}</li>" for e in data["entries"])
        self._html(200, f"""<!doctype html><title>{html.escape(TITLE)}</title>
<h1>{html.escape(TITLE)}</h1>
<form method="post" action="/sign"><input name="text" autofocus> <button>Sign</button></form>
<ul id="entries">{items}</ul>
<p><small>{len(data['entries'])} entries; api pid {data['served_by']}, front pid {os.getpid()}</small></p>
""")

    def do_POST(self) -> None:
        if self.path != "/sign":
            return self._html(404, "not found")
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        text = (form.get("text") or [""])[0]
        try:
            call_api("/entries", {"text": text})
        except (OSError, urllib.error.URLError) as exc:
            return self._html(502, f"the API refused the entry: {html.escape(str(exc))}")
        self.send_response(303)
        self.send_header("Location", "/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, fmt: str, *args) -> None:
        print(f"{self.address_string()} {fmt % args}", flush=True)


def main() -> None:
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("0.0.0.0" if "PORT" not in os.environ else "127.0.0.1", port), Handler)
    print(f"front listening on port {port}, api at {api_url('')}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
