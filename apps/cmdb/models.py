"""Configuration items, their relations and their change history."""

from django.db import models
from django.urls import reverse

from apps.cmdb.choices import ChangeAction, ItemKind, RelationKind


class ConfigurationItem(models.Model):
    """One thing the console knows to exist (a cluster, node, namespace, runtime, service, addon
    instance, release or host), with its attributes as the last source reported them."""

    kind = models.CharField(max_length=20, choices=ItemKind.choices)
    # Unique per kind and stable across syncs, e.g. "prod-1/node-3" or "acme/shop/web/prod/main".
    key = models.CharField(max_length=400)
    name = models.CharField(max_length=253)
    cluster = models.ForeignKey(
        "clusters.Cluster", null=True, blank=True, on_delete=models.SET_NULL, related_name="cmdb_items"
    )
    organization = models.ForeignKey(
        "projects.Organization", null=True, blank=True, on_delete=models.CASCADE, related_name="cmdb_items"
    )
    # The dice.io/org label seen on the item; set when it belongs to an organization.
    org_slug = models.CharField(max_length=63, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    present = models.BooleanField(default=True, help_text="False once the source stops reporting it")
    source = models.CharField(max_length=100, blank=True, help_text="Who reported it last")
    created = models.DateTimeField(auto_now_add=True)
    changed = models.DateTimeField(auto_now_add=True, help_text="When the attributes last changed")
    last_seen = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["kind", "key"]
        constraints = [models.UniqueConstraint(fields=["kind", "key"], name="cmdb_item_key_per_kind")]
        indexes = [models.Index(fields=["cluster", "kind"])]

    def __str__(self):
        return f"{self.kind} {self.name}"

    def get_absolute_url(self):
        return reverse("cmdb:item", args=[self.pk])


class Relation(models.Model):
    """A directed link between two items: source <kind> target (a runtime runs-on a node)."""

    source = models.ForeignKey(ConfigurationItem, on_delete=models.CASCADE, related_name="relations_out")
    kind = models.CharField(max_length=20, choices=RelationKind.choices)
    target = models.ForeignKey(ConfigurationItem, on_delete=models.CASCADE, related_name="relations_in")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["source", "kind", "target"]
        constraints = [
            models.UniqueConstraint(fields=["source", "kind", "target"], name="cmdb_relation_once")
        ]

    def __str__(self):
        return f"{self.source} {self.kind} {self.target}"


class Change(models.Model):
    """One change of an item: which attributes went from what to what, when, reported by whom."""

    item = models.ForeignKey(ConfigurationItem, on_delete=models.CASCADE, related_name="changes")
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    source = models.CharField(max_length=100)
    action = models.CharField(max_length=10, choices=ChangeAction.choices)
    # {"dotted.attribute": {"old": ..., "new": ...}}
    diff = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self):
        return f"{self.item} {self.action} by {self.source}"
