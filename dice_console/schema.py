"""/api/schema/ served from memory: the OpenAPI document depends only on the code (it is generated
public, the same for every user), yet building and rendering it costs ~130 ms. Each process builds it
once per format (YAML or JSON), version and language, on first request, then answers with the bytes."""

from __future__ import annotations

import threading

from django.http import HttpResponse
from drf_spectacular.views import SpectacularAPIView
from rest_framework.response import Response


class CachedSchemaView(SpectacularAPIView):
    _rendered: dict[tuple, tuple[bytes, str, str]] = {}
    _lock = threading.Lock()

    @classmethod
    def clear(cls) -> None:
        """Forget what was built (tests that change the API surface at run time call it)."""
        with cls._lock:
            cls._rendered.clear()

    def _key(self, request) -> tuple:
        return (request.accepted_media_type, self.api_version or request.version or request.GET.get("version"),
                request.GET.get("lang"))

    def get(self, request, *args, **kwargs):
        hit = self._rendered.get(self._key(request))
        if hit is None:
            return super().get(request, *args, **kwargs)
        body, content_type, disposition = hit
        return HttpResponse(body, content_type=content_type, headers={"Content-Disposition": disposition})

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if isinstance(response, Response) and response.status_code == 200:
            response.render()
            with self._lock:
                self._rendered[self._key(request)] = (
                    bytes(response.content), response["Content-Type"], response.get("Content-Disposition", ""))
        return response
