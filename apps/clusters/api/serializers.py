"""Serializers of the clusters API. Credentials are write-only: reads show only "set" and a fingerprint."""

from rest_framework import serializers

from apps.clusters.models import Cluster, Node
from apps.clusters.services import overcommit_table
from apps.projects.models import Organization
from dice_console.api import ScopedSlugRelatedField


class ClusterSerializer(serializers.ModelSerializer):
    credentials = serializers.SerializerMethodField()
    overcommit = serializers.SerializerMethodField()
    # Write-only credentials: a kubeconfig (+ context), or server + ca + token.
    kubeconfig = serializers.CharField(write_only=True, required=False, allow_blank=True, trim_whitespace=False)
    context = serializers.CharField(required=False, allow_blank=True)
    server = serializers.CharField(write_only=True, required=False, allow_blank=True)
    ca = serializers.CharField(write_only=True, required=False, allow_blank=True, trim_whitespace=False)
    token = serializers.CharField(write_only=True, required=False, allow_blank=True)
    overcommit_ratios = serializers.DictField(write_only=True, required=False, source="overcommit_input")
    organization = ScopedSlugRelatedField(
        Organization, slug_field="slug", required=False, allow_null=True,
        help_text="the owning organization (its owners and ops manage the cluster); null: platform-wide (staff)")
    granted_to = serializers.SlugRelatedField(
        many=True, slug_field="slug", queryset=Organization.objects.all(), required=False,
        help_text="platform-wide clusters: the organizations that may use it (staff only; shown to staff only)")
    # Not a URLField: a cluster without an API server (local) has an empty one.
    api_server = serializers.CharField(read_only=True, help_text="the Kubernetes API server URL; empty for local")

    class Meta:
        model = Cluster
        fields = [
            "id", "name", "organization", "granted_to", "all_organizations", "kind", "description", "api_server", "wildcard_domain", "ingress_class", "storage_class",
            "allow_prod_mem_overcommit", "overcommit", "overcommit_ratios", "auth_method", "context",
            "credentials", "check_status", "checked_at", "server_version", "operators", "check_report",
            "synced_at", "sync_error", "created",
            "kubeconfig", "server", "ca", "token",
        ]
        read_only_fields = ["id", "api_server", "auth_method", "check_status", "checked_at",
                            "server_version", "operators", "check_report", "synced_at", "sync_error", "created"]
        validators = []  # uniqueness is checked by the services, with a message that names the cluster

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list | tuple):
            fields["name"].read_only = True
            fields["organization"].read_only = True
            fields["kind"].read_only = True
        return fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        request = self.context.get("request")
        if request is None or not request.user.is_superuser:
            data.pop("granted_to", None)
        return data

    def get_credentials(self, obj) -> dict:
        return {"set": obj.has_credentials, "fingerprint": obj.credentials_fingerprint}

    def get_overcommit(self, obj) -> dict:
        return {ws: {k: float(v) for k, v in r.items()} for ws, r in overcommit_table(obj).items()}


class NodeSerializer(serializers.ModelSerializer):
    cluster = serializers.SlugRelatedField(slug_field="name", read_only=True)
    dice_labels = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = Node
        fields = ["id", "cluster", "name", "ready", "unschedulable", "capacity", "allocatable", "requests", "limits",
                  "pod_count", "labels", "dice_labels", "conditions", "internal_ip", "kubelet_version", "synced_at"]
        read_only_fields = fields


class NodeLabelsSerializer(serializers.Serializer):
    labels = serializers.ListField(child=serializers.CharField(), allow_empty=True,
                                   help_text="the dice/ labels the node should carry, e.g. [\"dice/job\"]")


class FindingSerializer(serializers.Serializer):
    """One finding of an inspection (documentation of the report's shape)."""

    severity = serializers.CharField()
    check = serializers.CharField()
    object = serializers.CharField()
    namespace = serializers.CharField(allow_blank=True)
    org = serializers.CharField(allow_blank=True, allow_null=True)
    message = serializers.CharField()
    link = serializers.CharField(allow_blank=True, allow_null=True, required=False)


class InspectionSerializer(serializers.Serializer):
    """The last inspection of a cluster (`id` and `created` null when it was never inspected), with
    the findings the requesting user may see."""

    cluster = serializers.CharField()
    id = serializers.IntegerField(allow_null=True)
    created = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    counts = serializers.DictField(child=serializers.IntegerField())
    findings = FindingSerializer(many=True)
