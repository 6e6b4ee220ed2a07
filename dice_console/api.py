"""Base classes of the REST API: organization-scoped viewsets and error translation."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, mixins, serializers, viewsets
from rest_framework.views import exception_handler as drf_exception_handler

from apps.projects import scope


def exception_handler(exc, context):
    """Let services raise Django's errors; the API answers them as 400 and 403 with the message."""
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    return drf_exception_handler(exc, context)


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


class ScopedSlugRelatedField(serializers.SlugRelatedField):
    """A related field that only finds objects inside the requesting user's scope."""

    def __init__(self, model, **kwargs):
        self.scoped_model = model
        kwargs.setdefault("queryset", model.objects.none())
        super().__init__(**kwargs)

    def get_queryset(self):
        request = self.context.get("request")
        return scope.scoped(request.user if request else None, self.scoped_model)
