"""Viewsets of the tenancy API; every one reads through the organization scope."""

from django.contrib.auth import get_user_model
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import api_view
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from apps.projects import accounts, filtersets, permissions, services
from apps.projects.api import serializers
from apps.projects.models import (
    ApiToken,
    Application,
    AuditEvent,
    Member,
    Organization,
    Project,
    Workspace,
)
from dice_console.api import ScopedGenericViewSet, ScopedModelViewSet


class OrganizationViewSet(ScopedModelViewSet):
    model = Organization
    serializer_class = serializers.OrganizationSerializer
    filterset_class = filtersets.OrganizationFilterSet
    lookup_field = "slug"

    def perform_create(self, serializer):
        serializer.instance = services.create_organization(self.request.user, **serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.update_organization(
            self.request.user, serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        services.delete_organization(self.request.user, instance)


class ProjectViewSet(ScopedModelViewSet):
    model = Project
    serializer_class = serializers.ProjectSerializer
    filterset_class = filtersets.ProjectFilterSet
    select_related = ("organization",)
    prefetch_related = ("workspaces__cluster", "workspaces__project__organization", "workspaces__data_clusters")

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        org = data.pop("organization")
        serializer.instance = services.create_project(self.request.user, org, **data)

    def perform_update(self, serializer):
        serializer.instance = services.update_project(self.request.user, serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        services.delete_project(self.request.user, instance)


class ApplicationViewSet(ScopedModelViewSet):
    model = Application
    serializer_class = serializers.ApplicationSerializer
    filterset_class = filtersets.ApplicationFilterSet
    select_related = ("project__organization",)

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        project = data.pop("project")
        serializer.instance = services.create_application(self.request.user, project, **data)

    def perform_update(self, serializer):
        serializer.instance = services.update_application(
            self.request.user, serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        services.delete_application(self.request.user, instance)


class WorkspaceViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, ScopedGenericViewSet
):
    model = Workspace
    serializer_class = serializers.WorkspaceSerializer
    filterset_class = filtersets.WorkspaceFilterSet
    select_related = ("project__organization", "cluster")
    prefetch_related = ("data_clusters",)
    http_method_names = ["get", "put", "patch", "head", "options"]

    def perform_update(self, serializer):
        serializer.instance = services.update_workspace(
            self.request.user, serializer.instance, **serializer.validated_data
        )


class MemberViewSet(ScopedModelViewSet):
    model = Member
    serializer_class = serializers.MemberSerializer
    filterset_class = filtersets.MemberFilterSet
    select_related = ("user", "organization", "project", "application")

    def perform_create(self, serializer):
        data = serializer.validated_data
        target = data.get("application") or data.get("project") or data["organization"]
        serializer.instance = services.add_member(
            self.request.user, target, username=data["user"]["username"], role=data["role"]
        )

    def perform_update(self, serializer):
        role = serializer.validated_data.get("role", serializer.instance.role)
        serializer.instance = services.change_member_role(self.request.user, serializer.instance, role)

    def perform_destroy(self, instance):
        services.remove_member(self.request.user, instance)


class ApiTokenViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin,
    ScopedGenericViewSet,
):
    """The requesting user's own tokens. The key is returned once, in the create response."""

    model = ApiToken
    serializer_class = serializers.ApiTokenSerializer
    http_method_names = ["get", "post", "delete", "head", "options"]

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, key = services.create_token(request.user, **serializer.validated_data)
        data = self.get_serializer(token).data
        data["key"] = key
        return Response(data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.revoke_token(self.request.user, instance)


class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedGenericViewSet):
    model = AuditEvent
    serializer_class = serializers.AuditEventSerializer
    filterset_class = filtersets.AuditEventFilterSet
    select_related = ("organization",)


class IsStaff(BasePermission):
    message = "only staff manage users"

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and request.user.is_superuser)


class UserViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin,
                  viewsets.GenericViewSet):
    """User accounts, for staff: list, read, change e-mail, names and status (is_active=false
    deactivates: sign-in, tokens and open sockets stop). New people come through invitations."""

    serializer_class = serializers.UserSerializer
    permission_classes = [IsStaff]
    http_method_names = ["get", "put", "patch", "head", "options"]
    filterset_fields = ["username", "is_active", "is_staff"]

    def get_queryset(self):
        return get_user_model().objects.order_by("username").prefetch_related("memberships__organization")

    def perform_update(self, serializer):
        serializer.instance = accounts.update_user(self.request.user, serializer.instance, **serializer.validated_data)


class InvitationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                        mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Invitations: staff invite anyone, an organization's owners into it. The create response
    carries the one-time link (shown only then) that lets the person choose a password."""

    serializer_class = serializers.InvitationSerializer
    http_method_names = ["get", "post", "delete", "head", "options"]

    def get_queryset(self):
        return accounts.invitations_for(self.request.user).select_related("user", "organization", "created_by")

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        invitation, key = accounts.invite(
            request.user, username=data["user"]["username"], email=data["user"].get("email", ""),
            organization=data.get("organization"), role=data.get("role", permissions.Role.GUEST))
        body = self.get_serializer(invitation).data
        body["link"] = request.build_absolute_uri(reverse("invitation", args=[key]))
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        accounts.revoke_invitation(self.request.user, instance)


@extend_schema(responses={200: dict})
@api_view(["GET"])
def me(request):
    """The authenticated user."""
    user = request.user
    return Response({"id": user.pk, "username": user.username, "is_superuser": user.is_superuser})


@extend_schema(responses={200: dict})
@api_view(["GET"])
def permission_table(request):
    """Which role may do what."""
    return Response({"roles": [r for r, _ in permissions.Role.choices], "permissions": permissions.permission_table()})

