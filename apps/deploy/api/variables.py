"""API of the console's environment variables per application and workspace (/api/variables/):
list, read, set (POST creates or replaces by application, workspace and name), change the
value, delete. Secret values are write-only: they read back as ******. Every change goes through
apps.deploy.variables (rights, name rules, the audit log)."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from apps.deploy import filtersets, variables
from apps.deploy.models import EnvironmentVariable
from apps.projects.choices import WorkspaceKind
from apps.projects.models import Application
from dice_console.api import ScopedModelViewSet, ScopedRelationsMixin


class VariableSerializer(ScopedRelationsMixin, serializers.ModelSerializer):
    """A variable; `value` of a secret one reads back as ******."""

    application = serializers.PrimaryKeyRelatedField(queryset=Application.objects.none())
    application_name = serializers.CharField(source="application.__str__", read_only=True)
    workspace = serializers.ChoiceField(choices=WorkspaceKind.values)
    name = serializers.CharField(max_length=200, trim_whitespace=False)
    value = serializers.CharField(trim_whitespace=False, allow_blank=True, max_length=variables.MAX_VALUE)

    class Meta:
        model = EnvironmentVariable
        fields = ["id", "application", "application_name", "workspace", "name", "value", "secret", "created",
                  "updated"]
        read_only_fields = ["id", "created", "updated"]
        validators = []

    def to_internal_value(self, data):
        if isinstance(data, dict) and isinstance(data.get("workspace"), str):
            data = {**data, "workspace": data["workspace"].upper()}
        return super().to_internal_value(data)

    def to_representation(self, instance):
        return {
            "id": instance.pk,
            "application": instance.application_id,
            "application_name": str(instance.application),
            "workspace": instance.workspace.kind,
            "name": instance.name,
            "value": variables.MASK if instance.secret else instance.value,
            "secret": instance.secret,
            "created": serializers.DateTimeField().to_representation(instance.created),
            "updated": serializers.DateTimeField().to_representation(instance.updated),
        }


class VariableViewSet(ScopedModelViewSet):
    """Environment variables of the applications in scope, per workspace; the next deploy of a
    runtime in that workspace takes them (README, "Environment variables")."""

    model = EnvironmentVariable
    serializer_class = VariableSerializer
    filterset_class = filtersets.VariableFilterSet
    select_related = ("application__project__organization", "workspace")

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = variables.set_variable(
            self.request.user, data["application"], data["workspace"], name=data["name"], value=data["value"],
            secret=data.get("secret", False))

    def perform_update(self, serializer):
        obj = serializer.instance
        data = serializer.validated_data
        for field, current in (("application", obj.application), ("workspace", obj.workspace.kind),
                               ("name", obj.name)):
            if field in data and data[field] != current:
                raise ValidationError({field: "the application, workspace and name of a variable cannot change"})
        if "value" not in data and data.get("secret", obj.secret) != obj.secret:
            raise ValidationError({"value": "give the value again when changing `secret`"})
        value = data["value"] if "value" in data else obj.plain_value()
        serializer.instance = variables.set_variable(
            self.request.user, obj.application, obj.workspace, name=obj.name, value=value,
            secret=data.get("secret", obj.secret))

    def perform_destroy(self, instance):
        variables.unset_variable(self.request.user, instance)
