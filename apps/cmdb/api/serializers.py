"""Serializers of the CMDB API."""

from rest_framework import serializers

from apps.cmdb.models import Change, ConfigurationItem, Relation


class RelatedItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = ConfigurationItem
        fields = ["id", "kind", "key", "name"]


class RelationSerializer(serializers.ModelSerializer):
    source = RelatedItemSerializer(read_only=True)
    target = RelatedItemSerializer(read_only=True)

    class Meta:
        model = Relation
        fields = ["id", "source", "kind", "target", "created"]


class ItemSerializer(serializers.ModelSerializer):
    cluster = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    organization = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)

    class Meta:
        model = ConfigurationItem
        fields = ["id", "kind", "key", "name", "cluster", "organization", "org_slug", "attributes", "present",
                  "source", "created", "changed", "last_seen"]
        read_only_fields = fields


class ChangeSerializer(serializers.ModelSerializer):
    item = RelatedItemSerializer(read_only=True)

    class Meta:
        model = Change
        fields = ["id", "item", "created", "source", "action", "diff"]
        read_only_fields = fields
