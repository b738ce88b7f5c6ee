"""What the deploy machinery keeps in the database: access snapshots.

An access snapshot is the whole grant state of this environment at one moment,
stored as a gzip-compressed access file (schema omnitool.access/v1). Imports
take one before they write; `rollback --access-only` restores one.
"""
from django.db import models
from django.utils import timezone


class AccessSnapshot(models.Model):
    created_at = models.DateTimeField("created at", default=timezone.now, db_index=True)
    environment = models.CharField("environment", max_length=20, help_text="OMNITOOL_ENV when it was taken.")
    reason = models.CharField("reason", max_length=200, help_text="What took it, e.g. 'before import_access'.")
    tool_count = models.PositiveIntegerField("tools", default=0)
    grant_count = models.PositiveIntegerField("grants", default=0)
    document = models.BinaryField("access file (gzip)", help_text="The grants as a gzip-compressed access file.")
    sha256 = models.CharField("SHA-256", max_length=64, help_text="Checksum of the uncompressed access file.")

    class Meta:
        ordering = ["-created_at", "-pk"]
        get_latest_by = ["created_at", "pk"]
        verbose_name = "access snapshot"
        verbose_name_plural = "access snapshots"

    def __str__(self) -> str:
        return f"#{self.pk} {self.created_at:%Y-%m-%d %H:%M:%S} UTC, {self.grant_count} grants ({self.reason})"
