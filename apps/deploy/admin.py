"""Django admin for releases: read-only, since a release never changes once made."""

from django.contrib import admin

from apps.deploy.models import Release


@admin.register(Release)
class ReleaseAdmin(admin.ModelAdmin):
    list_display = ("__str__", "version", "created_by_name", "pipeline_run_id", "created")
    list_filter = ("application__project__organization",)
    search_fields = ("application__slug", "description", "content_hash")
    list_select_related = ("application__project__organization",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
