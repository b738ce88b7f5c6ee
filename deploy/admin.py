"""Access snapshots in the admin: read-only, so operators can find the id that
`rollback --access-only ID` takes and download what a snapshot held."""
from django.contrib import admin
from django.http import HttpResponse
from django.urls import path, reverse
from django.utils.html import format_html

from deploy.models import AccessSnapshot


@admin.register(AccessSnapshot)
class AccessSnapshotAdmin(admin.ModelAdmin):
    list_display = ("id", "created_at", "environment", "reason", "tool_count", "grant_count", "download")
    list_filter = ("environment",)
    search_fields = ("reason",)
    date_hierarchy = "created_at"
    fields = ("id", "created_at", "environment", "reason", "tool_count", "grant_count", "sha256", "download")
    readonly_fields = fields

    def get_queryset(self, request):
        # The document can be megabytes; lists and pages never need it.
        return super().get_queryset(request).defer("document")

    def has_add_permission(self, request) -> bool:
        return False  # snapshots are taken by import_access and rollback

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="access file")
    def download(self, snapshot: AccessSnapshot) -> str:
        url = reverse("admin:deploy_accesssnapshot_download", args=[snapshot.pk])
        return format_html('<a href="{}">access-snapshot-{}.json.gz</a>', url, snapshot.pk)

    def get_urls(self):
        download = self.admin_site.admin_view(self.download_view)
        return [
            path("<int:snapshot_id>/download/", download, name="deploy_accesssnapshot_download"),
            *super().get_urls(),
        ]

    def download_view(self, request, snapshot_id: int) -> HttpResponse:
        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        snapshot = AccessSnapshot.objects.get(pk=snapshot_id)
        response = HttpResponse(bytes(snapshot.document), content_type="application/gzip")
        response["Content-Disposition"] = f'attachment; filename="access-snapshot-{snapshot.pk}.json.gz"'
        return response
