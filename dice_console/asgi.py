"""ASGI entry point: Django for HTTP, Channels for WebSockets (routes gathered from the apps)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dice_console.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs the app registry loaded)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from apps.logs.wsauth import TokenAuthMiddleware  # noqa: E402
from dice_console.heap import CollectWhenIdle, settle_heap, tune_collector, watch_collections  # noqa: E402
from dice_console.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": CollectWhenIdle(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(TokenAuthMiddleware(URLRouter(websocket_urlpatterns)))
        ),
    }
)

# Startup is over: what it built is frozen, so the collector's full passes (which hold every
# request) skip it (dice_console.heap.settle_heap); the collector then runs when no request is alive
# (CollectWhenIdle), its allocation thresholds only a backstop (tune_collector).
settle_heap()
tune_collector()
watch_collections()  # only with DICE_GC_STATS set (benchmarks)
