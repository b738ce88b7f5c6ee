"""Admin for tools and grants.

Tools themselves come from the catalogue (tools/catalogue.py), so the admin
shows them read-only; what admins manage here are the grants.
"""
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Count
from django.template.defaultfilters import pluralize
from django.template.response import TemplateResponse

from tools.forms import GrantToAllExceptForm
from tools.grants import grant_to_all_active_users_except
from tools.models import Tool, ToolAccess


class GrantInline(admin.TabularInline):
    """Grants listed on the page of a tool or of a user; `autocomplete_fields`
    names the other side, which the admin picks when adding a grant."""

    model = ToolAccess
    readonly_fields = ("granted_at", "granted_by")
    extra = 0
    other_side_ordering: str

    def get_queryset(self, request):
        other_side = self.autocomplete_fields[0]
        return (
            super().get_queryset(request).select_related(other_side, "granted_by").order_by(self.other_side_ordering)
        )


class GrantsOfToolInline(GrantInline):
    fk_name = "tool"
    fields = ("user", "granted_at", "granted_by")
    autocomplete_fields = ("user",)
    other_side_ordering = "user__username"
    verbose_name = "grant"
    verbose_name_plural = "users who can open this tool"


class GrantsOfUserInline(GrantInline):
    fk_name = "user"
    fields = ("tool", "granted_at", "granted_by")
    autocomplete_fields = ("tool",)
    other_side_ordering = "tool__name"
    verbose_name = "tool grant"
    verbose_name_plural = "tools this user can open"


def save_grant_formset(request, formset) -> None:
    """Save a formset of grants, recording the admin who added each new one."""
    for grant in formset.save(commit=False):
        if grant.granted_by_id is None:
            grant.granted_by = request.user
        grant.save()
    for grant in formset.deleted_objects:
        grant.delete()


@admin.register(Tool)
class ToolAdmin(admin.ModelAdmin):
    list_display = ("name", "key", "grant_count", "description")
    search_fields = ("key", "name")
    readonly_fields = ("key", "name", "description")
    inlines = [GrantsOfToolInline]
    actions = ["grant_to_all_active_users_except_action"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(grant_count=Count("accesses"))

    @admin.display(description="grants", ordering="grant_count")
    def grant_count(self, tool: Tool) -> int:
        return tool.grant_count

    def has_add_permission(self, request) -> bool:
        return False  # tools are declared in tools/catalogue.py

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # removal is a RemoveTool data migration

    def save_formset(self, request, form, formset, change):
        save_grant_formset(request, formset)

    def has_grant_permission(self, request) -> bool:
        """May run "Grant to all active users except…": change on tools and, because the action
        creates grants, add_toolaccess like the grant add page and the inline. (An action's
        `permissions` are any-of, so both live in this one check.)"""
        return self.has_change_permission(request) and request.user.has_perm(
            f"{ToolAccess._meta.app_label}.add_toolaccess"
        )

    @admin.action(description="Grant to all active users except…", permissions=["grant"])
    def grant_to_all_active_users_except_action(self, request, queryset):
        form = GrantToAllExceptForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            excluded = form.cleaned_data["excluded_users"]
            result = grant_to_all_active_users_except(
                queryset, [user.pk for user in excluded], granted_by=request.user
            )
            left_out = ", ".join(result.excluded_usernames) or "nobody"
            self.message_user(
                request,
                f"Granted {result.total_created} new access{pluralize(result.total_created, 'es')} "
                f"to {len(result.created)} tool{pluralize(len(result.created))}; left out: {left_out}.",
                messages.SUCCESS,
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Grant to all active users except…",
            "opts": self.model._meta,
            "tools": queryset,
            "form": form,
            "media": self.media + form.media,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action_name": "grant_to_all_active_users_except_action",
        }
        return TemplateResponse(request, "admin/tools/tool/grant_to_all_except.html", context)


@admin.register(ToolAccess)
class ToolAccessAdmin(admin.ModelAdmin):
    list_display = ("user", "tool", "granted_at", "granted_by")
    list_select_related = ("user", "tool", "granted_by")
    list_filter = ("tool",)
    search_fields = ("user__username", "user__email", "tool__key", "tool__name")
    autocomplete_fields = ("user", "tool")
    readonly_fields = ("granted_at", "granted_by")
    date_hierarchy = "granted_at"

    def save_model(self, request, obj, form, change):
        if obj.granted_by_id is None:
            obj.granted_by = request.user
        super().save_model(request, obj, form, change)
