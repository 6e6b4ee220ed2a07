"""Django admin of the CMDB (read-mostly: the sync and the deploys write it)."""

from django.contrib import admin

from apps.cmdb.models import Change, ConfigurationItem, Relation


class RelationInline(admin.TabularInline):
    model = Relation
    fk_name = "source"
    extra = 0
    raw_id_fields = ("target",)


@admin.register(ConfigurationItem)
class ConfigurationItemAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "key", "cluster", "organization", "present", "changed", "last_seen")
    list_filter = ("kind", "present", "cluster")
    search_fields = ("name", "key", "org_slug")
    readonly_fields = ("created", "changed", "last_seen")
    inlines = [RelationInline]


@admin.register(Relation)
class RelationAdmin(admin.ModelAdmin):
    list_display = ("source", "kind", "target", "created")
    list_filter = ("kind",)
    raw_id_fields = ("source", "target")


@admin.register(Change)
class ChangeAdmin(admin.ModelAdmin):
    list_display = ("created", "item", "action", "source")
    list_filter = ("action", "item__kind")
    search_fields = ("item__name", "source")
    raw_id_fields = ("item",)

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False
