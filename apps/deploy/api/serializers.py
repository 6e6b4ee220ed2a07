"""Serializers of the deploy API."""

import base64
import binascii

from rest_framework import serializers

from apps.deploy.bundles import MAX_ARCHIVE
from apps.deploy.models import Release
from apps.deploy.summary import release_summary
from apps.pipelines.models import PipelineRun
from apps.projects import scope
from apps.projects.models import Application
from dice_console.api import ScopedRelationsMixin


def uploaded_archive(attrs: dict) -> bytes | None:
    """The spec folder's tar.gz sent as the file `files` or as `files_base64` (None: neither);
    read up to one byte over the limit, so bundles.check_archive refuses a larger one by its size."""
    if attrs.get("files") is not None:
        return attrs["files"].read(MAX_ARCHIVE + 1)
    if attrs.get("files_base64"):
        try:
            return base64.b64decode(attrs["files_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise serializers.ValidationError({"files_base64": "not valid base64"}) from None
    return None


class ReleaseSerializer(ScopedRelationsMixin, serializers.ModelSerializer):
    """A release as listed; `hash` covers the text and the image map (equal hash, equal content)."""

    url = serializers.HyperlinkedIdentityField(view_name="api:release-detail")
    application = serializers.PrimaryKeyRelatedField(queryset=Application.objects.none())
    application_name = serializers.CharField(source="application.__str__", read_only=True)
    hash = serializers.CharField(source="content_hash", read_only=True)
    created_by = serializers.CharField(source="created_by_name", read_only=True)
    spec_text = serializers.CharField(write_only=True, trim_whitespace=False, max_length=1024 * 1024)
    images = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False, default=dict)

    class Meta:
        model = Release
        fields = [
            "id", "url", "application", "application_name", "version", "description", "source_name",
            "spec_text", "spec_hash", "hash", "images", "image_overrides", "pipeline_run_id",
            "created_by", "created",
        ]
        read_only_fields = ["id", "version", "spec_hash", "image_overrides", "created"]
        extra_kwargs = {"source_name": {"required": False}, "description": {"required": False}}
        validators = []

    def validate(self, attrs):
        """`pipeline_run_id` names a run of the same application that the user may see."""
        run_id = attrs.get("pipeline_run_id")
        if run_id is not None:
            request = self.context.get("request")
            runs = scope.scoped(request.user if request else None, PipelineRun)
            if not runs.filter(pk=run_id, application=attrs["application"]).exists():
                raise serializers.ValidationError(
                    {"pipeline_run_id": f"no pipeline run {run_id} of application {attrs['application']}"})
        return attrs


class ReleaseDetailSerializer(ReleaseSerializer):
    """One release with its dice.yml and a readable summary of what it runs. Made with the spec's
    folder (`files`, multipart, or `files_base64`): the local cluster runs the services from it."""

    spec_text = serializers.CharField(trim_whitespace=False, max_length=1024 * 1024)
    summary = serializers.SerializerMethodField()
    files_base64 = serializers.CharField(
        required=False, allow_blank=True, write_only=True,
        help_text="The spec folder as a base64 tar.gz (for the local cluster); or upload `files` as multipart",
    )
    files = serializers.FileField(required=False, write_only=True)

    class Meta(ReleaseSerializer.Meta):
        fields = [*ReleaseSerializer.Meta.fields, "summary", "files", "files_base64"]

    def validate(self, attrs):
        attrs = super().validate(attrs)
        attrs["archive"] = uploaded_archive(attrs)
        return attrs

    def get_summary(self, obj) -> dict:
        return release_summary(obj)


class SpecValidateSerializer(serializers.Serializer):
    text = serializers.CharField(trim_whitespace=False, allow_blank=True, max_length=1024 * 1024 + 1)
    workspace = serializers.CharField(required=False, allow_blank=True, allow_null=True)
