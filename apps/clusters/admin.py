"""Django admin for clusters; credentials are never shown (only whether they are set)."""

from django.contrib import admin

from apps.clusters.models import Cluster, InspectionReport, NamespaceUsage, Node, WorkspaceOvercommit
from dice_console.admin import AuditedAdmin


class OvercommitInline(admin.TabularInline):
    model = WorkspaceOvercommit
    extra = 0


@admin.register(Cluster)
class ClusterAdmin(AuditedAdmin):
    list_display = ("name", "kind", "api_server", "wildcard_domain", "check_status", "synced_at", "created")
    list_filter = ("kind", "check_status")
    search_fields = ("name", "description")
    # `credentials` is not editable, so it never appears; its fingerprint says whether it is set.
    readonly_fields = ("auth_method", "context", "credentials_fingerprint", "api_server", "check_status",
                       "check_report", "checked_at", "server_version", "operators", "synced_at", "sync_error")
    inlines = [OvercommitInline]

    def has_delete_permission(self, request, obj=None):
        return obj is None or not obj.is_local


@admin.register(WorkspaceOvercommit)
class WorkspaceOvercommitAdmin(AuditedAdmin):
    list_display = ("cluster", "workspace", "cpu_ratio", "mem_ratio")
    list_filter = ("cluster", "workspace")


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = ("name", "cluster", "ready", "unschedulable", "pod_count", "internal_ip", "synced_at")
    list_filter = ("cluster", "ready")
    search_fields = ("name", "internal_ip")


@admin.register(NamespaceUsage)
class NamespaceUsageAdmin(admin.ModelAdmin):
    list_display = ("namespace", "cluster", "org", "project", "workspace", "pods", "cpu_requests", "mem_requests")
    list_filter = ("cluster", "workspace")
    search_fields = ("namespace", "project", "org")


@admin.register(InspectionReport)
class InspectionReportAdmin(admin.ModelAdmin):
    list_display = ("cluster", "created", "counts", "error")
    list_filter = ("cluster",)
