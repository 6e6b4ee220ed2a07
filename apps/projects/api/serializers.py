"""Serializers of the tenancy API."""

from django.contrib.auth import get_user_model
from rest_framework import serializers

from apps.clusters.models import Cluster
from apps.projects.choices import Role
from apps.projects.models import (
    ApiToken,
    Application,
    AuditEvent,
    Invitation,
    Member,
    Organization,
    Project,
    Workspace,
)
from dice_console.api import ScopedRelationsMixin, ScopedSlugRelatedField


class OrganizationSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:organization-detail", lookup_field="slug")

    class Meta:
        model = Organization
        fields = ["id", "url", "slug", "name", "description", "created"]
        read_only_fields = ["id", "created"]
        extra_kwargs = {"name": {"required": False}}
        validators = []  # uniqueness is checked by the services, with a message that names the object

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list | tuple):
            fields["slug"].read_only = True
        return fields


class WorkspaceSerializer(serializers.ModelSerializer):
    cluster = ScopedSlugRelatedField(Cluster, slug_field="name")
    data_clusters = ScopedSlugRelatedField(
        Cluster, slug_field="name", many=True, required=False,
        help_text="data clusters (kind spark, flink) the workspace's Spark and Flink jobs and actions run on")
    project = serializers.StringRelatedField()

    class Meta:
        model = Workspace
        fields = ["id", "project", "kind", "cluster", "data_clusters", "cpu_quota", "mem_quota", "protected"]
        read_only_fields = ["id", "project", "kind"]


class ProjectSerializer(serializers.ModelSerializer):
    organization = ScopedSlugRelatedField(Organization, slug_field="slug")
    full_name = serializers.CharField(source="__str__", read_only=True)
    workspaces = WorkspaceSerializer(many=True, read_only=True)

    class Meta:
        model = Project
        fields = ["id", "organization", "slug", "full_name", "name", "description", "workspaces", "created"]
        read_only_fields = ["id", "created"]
        extra_kwargs = {"name": {"required": False}}
        validators = []  # uniqueness is checked by the services, with a message that names the object

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list | tuple):
            fields["organization"].read_only = True
            fields["slug"].read_only = True
        return fields


class ApplicationSerializer(serializers.ModelSerializer):
    organization = serializers.CharField(source="project.organization.slug", read_only=True)
    project = serializers.PrimaryKeyRelatedField(queryset=Project.objects.none())
    project_slug = serializers.CharField(source="project.slug", read_only=True)
    full_name = serializers.CharField(source="__str__", read_only=True)

    class Meta:
        model = Application
        fields = [
            "id", "organization", "project", "project_slug", "slug", "full_name",
            "name", "description", "repo_url", "created",
        ]
        read_only_fields = ["id", "created"]
        extra_kwargs = {"name": {"required": False}}
        validators = []  # uniqueness is checked by the services, with a message that names the object

    def get_fields(self):
        from apps.projects import scope

        fields = super().get_fields()
        request = self.context.get("request")
        fields["project"].queryset = scope.projects_for(request.user if request else None)
        if self.instance is not None and not isinstance(self.instance, list | tuple):
            fields["project"].read_only = True
            fields["slug"].read_only = True
        return fields


class MemberSerializer(ScopedRelationsMixin, serializers.ModelSerializer):
    scoped_relations = ("project", "application")

    username = serializers.CharField(source="user.username")
    organization = ScopedSlugRelatedField(Organization, slug_field="slug")
    project = serializers.PrimaryKeyRelatedField(queryset=Project.objects.none(), required=False, allow_null=True)
    application = serializers.PrimaryKeyRelatedField(
        queryset=Application.objects.none(), required=False, allow_null=True
    )
    role = serializers.ChoiceField(choices=Role.choices, default=Role.GUEST)
    level = serializers.CharField(read_only=True)

    class Meta:
        model = Member
        fields = ["id", "username", "organization", "project", "application", "level", "role", "created"]
        read_only_fields = ["id", "created", "level"]
        validators = []

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list | tuple):
            for name in ("username", "organization", "project", "application"):
                fields[name].read_only = True
        return fields

    def validate(self, attrs):
        org, project, app = attrs.get("organization"), attrs.get("project"), attrs.get("application")
        if project is not None and org is not None and project.organization_id != org.pk:
            raise serializers.ValidationError({"project": f"project {project} is not in organization {org}"})
        if app is not None and project is not None and app.project_id != project.pk:
            raise serializers.ValidationError({"application": f"application {app} is not in project {project}"})
        if app is not None and org is not None and app.project.organization_id != org.pk:
            raise serializers.ValidationError({"application": f"application {app} is not in organization {org}"})
        return attrs


class ApiTokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created", "last_used", "expires"]
        read_only_fields = ["id", "prefix", "created", "last_used"]


class AuditEventSerializer(serializers.ModelSerializer):
    organization = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id", "created", "actor_name", "organization", "action",
            "object_type", "object_id", "object_repr", "before", "after",
        ]
        read_only_fields = fields


class UserSerializer(serializers.ModelSerializer):
    """A user account, for staff. Passwords are never read or written here (invitations set them)."""

    organizations = serializers.SerializerMethodField()

    class Meta:
        model = get_user_model()
        fields = ["id", "username", "email", "first_name", "last_name", "is_active", "is_staff", "is_superuser",
                  "last_login", "date_joined", "organizations"]
        read_only_fields = ["id", "username", "last_login", "date_joined", "organizations"]

    def get_organizations(self, obj) -> list[str]:
        return sorted({m.organization.slug for m in obj.memberships.all()})


class InvitationSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")
    email = serializers.EmailField(source="user.email", required=False, allow_blank=True)
    organization = ScopedSlugRelatedField(Organization, slug_field="slug", required=False, allow_null=True)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.GUEST)
    created_by = serializers.CharField(source="created_by.username", read_only=True, default="")

    class Meta:
        model = Invitation
        fields = ["id", "username", "email", "organization", "role", "created_by", "created", "expires", "accepted"]
        read_only_fields = ["id", "created_by", "created", "expires", "accepted"]
