"""Django admin for the tenancy models (for ops)."""

from django.contrib import admin

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
from dice_console.admin import AuditedAdmin


class WorkspaceInline(admin.TabularInline):
    model = Workspace
    extra = 0


@admin.register(Organization)
class OrganizationAdmin(AuditedAdmin):
    list_display = ("slug", "name", "created")
    search_fields = ("slug", "name")


@admin.register(Project)
class ProjectAdmin(AuditedAdmin):
    list_display = ("slug", "organization", "name", "created")
    list_filter = ("organization",)
    search_fields = ("slug", "name")
    inlines = [WorkspaceInline]


@admin.register(Application)
class ApplicationAdmin(AuditedAdmin):
    list_display = ("slug", "project", "repo_url", "created")
    list_filter = ("project__organization",)
    search_fields = ("slug", "name", "repo_url")


@admin.register(Workspace)
class WorkspaceAdmin(AuditedAdmin):
    list_display = ("project", "kind", "cluster", "cpu_quota", "mem_quota")
    list_filter = ("kind", "cluster")


@admin.register(Member)
class MemberAdmin(AuditedAdmin):
    list_display = ("user", "role", "organization", "project", "application")
    list_filter = ("role", "organization")
    search_fields = ("user__username",)


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedAdmin):
    list_display = ("name", "user", "prefix", "created", "last_used", "expires")
    readonly_fields = ("prefix", "digest", "created", "last_used")
    search_fields = ("name", "user__username")


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created", "actor_name", "organization", "action", "object_type", "object_repr")
    list_filter = ("action", "object_type")
    search_fields = ("object_repr", "actor_name")

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Invitations (made on the Members page, the API or `dice user invite`); the link's key is
    never stored, only its hash."""

    list_display = ("user", "organization", "role", "created_by", "created", "expires", "accepted")
    list_filter = ("organization",)
    readonly_fields = ("digest",)
    search_fields = ("user__username", "user__email")
