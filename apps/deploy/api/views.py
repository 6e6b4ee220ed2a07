"""Viewsets of the deploy API: releases (create and read only; releases never change) and dice.yml tools."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, permissions, status
from rest_framework.decorators import action, api_view, permission_classes
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from apps.deploy import filtersets, services
from apps.deploy.api import serializers
from apps.deploy.diff import release_diff
from apps.deploy.models import Release
from dice_console.api import ScopedGenericViewSet
from dice_console.api_input import JSONParser, digits
from diceyml import check_dice_yml, dice_yml_json_schema


class ReleaseViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, ScopedGenericViewSet):
    """Releases of the applications in the user's scope. No update, no delete: make a new release."""

    model = Release
    filterset_class = filtersets.ReleaseFilterSet
    select_related = ("application__project__organization",)
    http_method_names = ["get", "post", "head", "options"]
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def get_queryset(self):
        qs = super().get_queryset()
        if self.action == "list":
            qs = qs.defer("spec_text")
        return qs

    def get_serializer_class(self):
        if self.action in ("retrieve", "create"):
            return serializers.ReleaseDetailSerializer
        return serializers.ReleaseSerializer

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            release = services.create_release(
                request.user,
                data["application"],
                spec_text=data["spec_text"],
                images=data.get("images") or {},
                source_name=data.get("source_name") or "dice.yml",
                pipeline_run_id=data.get("pipeline_run_id"),
                description=data.get("description", ""),
                files=data.get("archive"),
            )
        except services.SpecRejected as exc:
            return Response(
                {"spec_text": exc.messages, "errors": [e.to_dict() for e in exc.spec_errors]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        return Response(self.get_serializer(release).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[
            OpenApiParameter("other", OpenApiTypes.INT, description="release to compare with (default: the previous version)"),
            OpenApiParameter("workspace", OpenApiTypes.STR, description="DEV, TEST, STAGING or PROD (default: all four)"),
        ],
        responses={200: dict},
    )
    @action(detail=True, methods=["get"])
    def diff(self, request, pk=None):
        """What changes from `other` to this release, per workspace: unified YAML diff and changed paths."""
        release = self.get_object()
        other_id = request.query_params.get("other")
        if other_id:
            if not digits(other_id):
                raise ValidationError({"other": "must be a release id"})
            other = self.get_object_from(int(other_id))
        else:
            other = (
                Release.objects.filter(application_id=release.application_id, version__lt=release.version)
                .order_by("-version")
                .first()
            )
        try:
            data = release_diff(release, other, request.query_params.get("workspace") or None)
        except ValueError as exc:
            raise ValidationError({"workspace": str(exc)})
        return Response(data)

    def get_object_from(self, pk: int) -> Release:
        from django.http import Http404

        try:
            return super().get_queryset().get(pk=pk)
        except Release.DoesNotExist:
            raise Http404("no release matches `other`") from None


@extend_schema(request=serializers.SpecValidateSerializer, responses={200: dict})
@api_view(["POST"])
def validate_spec(request):
    """Check a dice.yml: {"valid": bool, "errors": [{"path", "line", "message"}], "warnings": [...]}
    (as `dice spec validate`)."""
    serializer = serializers.SpecValidateSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    text = serializer.validated_data["text"]
    workspace = serializer.validated_data.get("workspace") or None
    try:
        errors, warnings = check_dice_yml(text, workspace=workspace)
    except ValueError as exc:
        raise ValidationError({"workspace": str(exc)})
    return Response(
        {"valid": not errors, "errors": [e.to_dict() for e in errors], "warnings": [w.to_dict() for w in warnings]}
    )


@extend_schema(responses={200: dict}, auth=[])
@api_view(["GET"])
@permission_classes([permissions.AllowAny])
def spec_schema(request):
    """The JSON Schema of dice.yml, for editors (no login needed)."""
    return Response(dice_yml_json_schema())
