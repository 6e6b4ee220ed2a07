"""Base classes of the REST API: organization-scoped viewsets, and one shape for every error (see
README, API). What the API reads from a request (pages, filters, JSON) is in dice_console.api_input."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import JsonResponse
from django.shortcuts import render
from django.views import defaults
from rest_framework import exceptions, mixins, serializers, viewsets
from rest_framework.views import exception_handler as drf_exception_handler

from apps.projects import scope
from apps.projects.models import Application, Project


def exception_handler(exc, context):
    """Let services raise Django's errors; the API answers them as 400 and 403 with the message.

    Every error body is a JSON object: `{"detail": "..."}`, or for invalid input the fields that are
    wrong, each with a list of messages (`non_field_errors` for the body as a whole)."""
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": "; ".join(exc.messages)}
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, list):
        response.data = {"non_field_errors": response.data}
    if response is not None and isinstance(response.data, dict) and isinstance(response.data.get("detail"), list):
        response.data["detail"] = "; ".join(str(m) for m in response.data["detail"])  # `detail` is one string
    return response


# ---- viewsets ------------------------------------------------------------------------------------


class ScopedGenericViewSet(viewsets.GenericViewSet):
    """A viewset whose queryset is always the requesting user's organization scope.

    Objects outside the scope are simply absent: 404 on detail, missing from lists.
    Subclasses name `model`, and may add `select_related` / `prefetch_related`.
    """

    model = None
    select_related: tuple[str, ...] = ()
    prefetch_related: tuple[str, ...] = ()

    def get_queryset(self):
        qs = scope.scoped(self.request.user, self.model)
        if self.select_related:
            qs = qs.select_related(*self.select_related)
        if self.prefetch_related:
            qs = qs.prefetch_related(*self.prefetch_related)
        return qs.order_by(*self.model._meta.ordering or ["pk"])


class ScopedModelViewSet(
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    mixins.ListModelMixin,
    ScopedGenericViewSet,
):
    """Create, read, update, delete and list, all inside the organization scope."""


class ScopedRelationsMixin:
    """A serializer whose writable related fields named in `scoped_relations` find only objects
    inside the requesting user's scope (an id outside it reads as not found)."""

    scoped_relations: tuple[str, ...] = ("application",)

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        user = request.user if request else None
        for name in self.scoped_relations:
            field = fields.get(name)
            if field is not None and not field.read_only:
                field.queryset = scope.scoped(user, _SCOPED_RELATIONS[name])
        return fields


_SCOPED_RELATIONS = {"application": Application, "project": Project}


class ScopedSlugRelatedField(serializers.SlugRelatedField):
    """A related field that only finds objects inside the requesting user's scope."""

    def __init__(self, model, **kwargs):
        self.scoped_model = model
        kwargs.setdefault("queryset", model.objects.none())
        super().__init__(**kwargs)

    def get_queryset(self):
        request = self.context.get("request")
        return scope.scoped(request.user if request else None, self.scoped_model)

    def to_internal_value(self, data):
        # A name with a NUL byte names nothing (PostgreSQL refuses it in a query: a 500, not a 400).
        if isinstance(data, str) and "\x00" in data:
            self.fail("does_not_exist", slug_name=self.slug_field, value=data.replace("\x00", "\\x00"))
        return super().to_internal_value(data)


# ---- errors outside DRF --------------------------------------------------------------------------


def not_found(request, exception=None):
    """A 404 under /api/ (a URL no route matches) is JSON like every other API error."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """A 500 under /api/ is JSON as well (the traceback stays in the log)."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Server error."}, status=500)
    try:
        # The page with the navigation (the user is known); Django's default has no request context.
        return render(request, "500.html", status=500)
    except Exception:
        return defaults.server_error(request)
