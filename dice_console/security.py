"""Sign-in and page security helpers: the CSP nonce for templates, the client address for throttling,
and the login view whose password check runs off the shared request thread."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import close_old_connections

_login_pool: ThreadPoolExecutor | None = None


class SignInThrottle(AxesStandaloneBackend):
    """django-axes' lockout check for sign-ins that come with a request (the login page, the admin).
    Without one (a script or a test client calling authenticate()) there is no address to count and
    nothing to throttle, so it steps aside instead of raising as AxesStandaloneBackend does."""

    def authenticate(self, request=None, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def csp_nonce(request) -> dict:
    """Template context: `csp_nonce` for inline <script>/<style> (django-htmx's tags read it too)."""
    return {"csp_nonce": getattr(request, "csp_nonce", "")}


def client_ip(request) -> str:
    """The client's address for sign-in throttling: REMOTE_ADDR, or behind DICE_TRUSTED_PROXY_COUNT
    proxies the address the outermost trusted proxy saw (X-Forwarded-For, counted from the end)."""
    count = settings.DICE_TRUSTED_PROXY_COUNT
    if count > 0:
        forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
        if len(forwarded) >= count:
            return forwarded[-count]
    return request.META.get("REMOTE_ADDR", "")


def _pool() -> ThreadPoolExecutor:
    global _login_pool
    if _login_pool is None:
        _login_pool = ThreadPoolExecutor(max_workers=max(1, settings.DICE_LOGIN_THREADS),
                                         thread_name_prefix="dice-login")
    return _login_pool


def off_request_thread(view):
    """Wrap a synchronous view so that its POSTs run (and render) on the sign-in pool.

    Under ASGI, Django serves every synchronous view on one shared thread: a burst of PBKDF2 checks
    there delays every other request. This runs the view on a small pool of its own instead; its
    database connection is closed there when it is done, as a request's would be."""

    def render(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if hasattr(response, "render") and not getattr(response, "is_rendered", True):
            response.render()
        return response

    def run_in_pool(request, *args, **kwargs):
        try:
            return render(request, *args, **kwargs)
        finally:
            close_old_connections()  # this thread's connection, as request_finished would

    @functools.wraps(view)
    async def wrapper(request, *args, **kwargs):
        if request.method != "POST" or not isinstance(request, ASGIRequest):
            # Showing the form checks no password; under WSGI (and Django's test client) each request
            # already has a thread of its own: the usual path.
            return await sync_to_async(render, thread_sensitive=True)(request, *args, **kwargs)
        ctx = contextvars.copy_context()
        call = functools.partial(ctx.run, run_in_pool, request, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(_pool(), call)

    return wrapper
