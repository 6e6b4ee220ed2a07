"""Django admin of the deploy app: releases read-only (they never change), runtimes and deployments
for ops to look at; state changes go through the console (apps.deploy.deployments)."""

from django.contrib import admin

from apps.deploy.models import (
    AddonInstance,
    Deployment,
    DeploymentTransition,
    Release,
    ReleaseBundle,
    Runtime,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Release)
class ReleaseAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "version", "created_by_name", "pipeline_run_id", "created")
    list_filter = ("application__project__organization",)
    search_fields = ("application__slug", "description", "content_hash")
    list_select_related = ("application__project__organization",)


@admin.register(ReleaseBundle)
class ReleaseBundleAdmin(ReadOnlyAdmin):
    list_display = ("release", "sha256", "size", "files", "created")
    list_select_related = ("release__application__project__organization",)


class DeploymentInline(admin.TabularInline):
    model = Deployment
    fields = ("release", "status", "message", "created_by_name", "created", "finished")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Runtime)
class RuntimeAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "cluster", "release", "created", "updated")
    list_filter = ("workspace__kind", "cluster", "application__project__organization")
    search_fields = ("name", "application__slug")
    list_select_related = ("application__project__organization", "workspace", "cluster", "release")
    inlines = [DeploymentInline]


class TransitionInline(admin.TabularInline):
    model = DeploymentTransition
    fields = ("from_status", "to_status", "at", "reason")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Deployment)
class DeploymentAdmin(ReadOnlyAdmin):
    list_display = ("pk", "runtime", "release", "status", "created_by_name", "created", "finished")
    list_filter = ("status", "runtime__workspace__kind")
    search_fields = ("runtime__name", "runtime__application__slug", "message")
    list_select_related = ("runtime__application__project__organization", "runtime__workspace", "release")
    inlines = [TransitionInline]


@admin.register(AddonInstance)
class AddonInstanceAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "type", "size", "created", "updated")
    list_filter = ("type",)
    exclude = ("credentials",)
    list_select_related = ("runtime__application__project__organization", "runtime__workspace")
