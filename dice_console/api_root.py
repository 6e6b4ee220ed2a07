"""GET /api/: every endpoint of the API, by name, as absolute URLs (`{id}`-style placeholders where a
path takes a parameter), found by walking the API's URL patterns so that no endpoint is left out."""

from __future__ import annotations

import re

from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.decorators import api_view
from rest_framework.response import Response

_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")
_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")


def _route(pattern) -> str:
    text = str(pattern)
    text = _GROUP.sub(r"{\1}", text)
    text = _CONVERTER.sub(r"{\1}", text)
    return text.lstrip("^").rstrip("$").replace("\\.", ".")


def walk(patterns, prefix: str = ""):
    """(route, name) of every endpoint under `patterns`, in order."""
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from walk(p.url_patterns, prefix + _route(p.pattern))
        elif isinstance(p, URLPattern):
            route = prefix + _route(p.pattern)
            if "{format}" in route or not p.name:
                continue  # DRF's .json suffix variants repeat the plain routes
            yield route, p.name


def endpoints(patterns, base: str) -> dict[str, str]:
    """Collections under their path (`releases`, `cmdb/items`), the others under their route name."""
    found: dict[str, str] = {}
    for route, name in walk(patterns):
        if name == "api-root":
            continue
        key = route.rstrip("/") if name.endswith("-list") else name
        found.setdefault(key, base + route)
    return found


@api_view(["GET"])
def api_root(request):
    """Every endpoint: list endpoints under their collection name (`releases`), the others under
    their route name (`release-detail`, `spec-validate`...)."""
    prefix, resolver = get_resolver().namespace_dict["api"]  # the patterns this view is one of
    out = endpoints(resolver.url_patterns, request.build_absolute_uri("/" + prefix))
    out["schema"] = request.build_absolute_uri("/api/schema/")
    out["docs"] = request.build_absolute_uri("/api/docs/")
    return Response(out)
