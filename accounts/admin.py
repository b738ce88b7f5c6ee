"""User admin, with the tools a user has been granted on the user's page."""
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts.models import User
from tools.admin import GrantsOfUserInline, save_grant_formset


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    inlines = [GrantsOfUserInline]
    list_display = ("username", "email", "first_name", "last_name", "is_active", "is_staff")
    list_filter = ("is_active", "is_staff", "is_superuser")

    def save_formset(self, request, form, formset, change):
        if formset.model is GrantsOfUserInline.model:
            save_grant_formset(request, formset)
        else:
            super().save_formset(request, form, formset, change)
