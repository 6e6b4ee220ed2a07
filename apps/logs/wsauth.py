"""Token authentication for WebSockets, for the CLI and scripts: `?token=`, an `Authorization: Bearer`
header, or a `dice-token.<token>` entry of Sec-WebSocket-Protocol (which browsers can set). A valid
token sets scope["user"]; otherwise the session user (AuthMiddleware, outside) stays."""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async

from dice_console.wsaccess import TOKEN_PROTOCOL_PREFIX as PROTOCOL_PREFIX


def token_from_scope(scope) -> str | None:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("token"):
        return query["token"][0]
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            text = value.decode("latin-1")
            if text.lower().startswith("bearer "):
                return text[7:].strip()
    for protocol in scope.get("subprotocols", []) or []:
        if protocol.startswith(PROTOCOL_PREFIX):
            return protocol[len(PROTOCOL_PREFIX):]
    return None


@database_sync_to_async
def _user_of(key: str):
    from apps.projects.services import authenticate_token

    return authenticate_token(key)


class TokenAuthMiddleware:
    """Wraps an ASGI app; put it inside AuthMiddlewareStack so a token wins over the session."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope.get("type") == "websocket":
            key = token_from_scope(scope)
            if key:
                from django.contrib.auth.models import AnonymousUser

                from apps.projects.models import ApiToken

                user = await _user_of(key)
                # Sockets re-check their token while open (dice_console/wsaccess.py).
                scope = dict(scope, user=user or AnonymousUser(), token_auth=True,
                             token_digest=ApiToken.hash_key(key))
        return await self.inner(scope, receive, send)
