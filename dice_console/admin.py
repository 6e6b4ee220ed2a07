"""An admin base that writes an audit event for every change made through the Django admin."""

from django.contrib import admin

from apps.projects import audit


class AuditedAdmin(admin.ModelAdmin):
    def save_model(self, request, obj, form, change):
        before = None
        if change and obj.pk:
            before = audit.snapshot(type(obj).objects.get(pk=obj.pk))
        super().save_model(request, obj, form, change)
        audit.record(request.user, "admin_update" if change else "admin_create", obj,
                     before=before, after=audit.snapshot(obj))

    def delete_model(self, request, obj):
        audit.record(request.user, "admin_delete", obj, before=audit.snapshot(obj))
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            audit.record(request.user, "admin_delete", obj, before=audit.snapshot(obj))
        super().delete_queryset(request, queryset)
