"""User admin, with the tools a user has been granted on the user's page."""
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts.models import User
from tools.models import ToolAccess


class ToolAccessInline(admin.TabularInline):
    model = ToolAccess
    fk_name = "user"
    fields = ("tool", "granted_at", "granted_by")
    readonly_fields = ("granted_at", "granted_by")
    autocomplete_fields = ("tool",)
    extra = 0
    verbose_name = "tool grant"
    verbose_name_plural = "tools this user can open"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("tool", "granted_by")


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    inlines = [ToolAccessInline]
    list_display = ("username", "email", "first_name", "last_name", "is_active", "is_staff")
    list_filter = ("is_active", "is_staff", "is_superuser")

    def save_formset(self, request, form, formset, change):
        instances = formset.save(commit=False)
        for instance in instances:
            if isinstance(instance, ToolAccess) and instance.granted_by_id is None:
                instance.granted_by = request.user
            instance.save()
        for obj in formset.deleted_objects:
            obj.delete()
        formset.save_m2m()
