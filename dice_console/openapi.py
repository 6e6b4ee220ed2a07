"""The OpenAPI schema's shared parts: the API token scheme, and the error responses every operation
declares (400, 401, 403, 404; 409 and 429 where an operation answers them) with their bodies."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework import permissions

ERROR_SCHEMA = {
    "type": "object",
    "description": "What went wrong, in one sentence.",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}

VALIDATION_ERROR_SCHEMA = {
    "type": "object",
    "description": (
        "Invalid input: each field or query parameter that is wrong, with a list of messages; "
        "`non_field_errors` for the request as a whole; `detail` (a string) for a body that cannot be parsed."
    ),
    "properties": {
        "detail": {"type": "string"},
        "non_field_errors": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": True,
}

ERROR_DESCRIPTIONS = {
    "400": ("ValidationError", "The input is invalid; nothing was changed."),
    "401": ("Error", "No valid credentials (an `Authorization: Bearer <token>` header or a session)."),
    "403": ("Error", "Authenticated, but not allowed to do this."),
    "404": ("Error", "No such object in your scope (objects of other organizations are absent too)."),
    "409": ("Error", "The request conflicts with the current state (e.g. already done)."),
    "429": ("Error", "Too many requests; retry after the time in the `Retry-After` header."),
}


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.projects.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API token: `Authorization: Bearer <token>`."}


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's schema, plus the error responses each operation can give.

    A view adds codes beyond the usual ones with `error_responses = ("409",)` (or per action, in
    `error_responses_by_action`)."""

    def _error_component(self, name: str) -> dict:
        schema = ERROR_SCHEMA if name == "Error" else VALIDATION_ERROR_SCHEMA
        component = ResolvedComponent(name=name, type=ResolvedComponent.SCHEMA, schema=schema, object=name)
        self.registry.register_on_missing(component)
        return component.ref

    def _error_codes(self) -> list[str]:
        view = self.view
        public = any(isinstance(p, permissions.AllowAny) for p in view.get_permissions())
        codes = ["400", "403", "404"]
        if not public:
            codes.append("401")
        extra = getattr(view, "error_responses", ())
        by_action = getattr(view, "error_responses_by_action", {}).get(getattr(view, "action", None), ())
        codes += [str(c) for c in (*extra, *by_action)]
        if getattr(view, "throttle_classes", None):
            codes.append("429")
        return sorted(set(codes))

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code in self._error_codes():
            if code in responses and responses[code].get("content"):
                continue
            name, description = ERROR_DESCRIPTIONS.get(code, ("Error", "Refused."))
            responses[code] = {
                "description": responses.get(code, {}).get("description") or description,
                "content": {"application/json": {"schema": self._error_component(name)}},
            }
        return responses
