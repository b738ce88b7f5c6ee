"""Tools (one page of the app each) and the grants that let a user open one."""
from django.conf import settings
from django.db import models
from django.utils import timezone


class ToolManager(models.Manager["Tool"]):
    def get_by_natural_key(self, key: str) -> "Tool":
        return self.get(key=key)


class Tool(models.Model):
    """A tool of the portal. Its rows mirror `tools.catalogue.CATALOGUE`."""

    key = models.SlugField(
        "key",
        max_length=100,
        unique=True,
        help_text="Stable identifier used in URLs (/tools/<key>/) and in the access file. "
        "Change it only through a RenameTool data migration.",
    )
    name = models.CharField("name", max_length=200, unique=True, help_text="Name shown in the portal.")
    description = models.TextField("description", blank=True, help_text="One or two sentences for the portal.")

    objects = ToolManager()

    class Meta:
        ordering = ["name"]
        verbose_name = "tool"
        verbose_name_plural = "tools"

    def __str__(self) -> str:
        return self.name

    def natural_key(self) -> tuple[str]:
        return (self.key,)

    def get_absolute_url(self) -> str:
        return f"/tools/{self.key}/"


class ToolAccess(models.Model):
    """A grant: this user may open this tool."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="tool_accesses",
        verbose_name="user",
    )
    tool = models.ForeignKey(Tool, on_delete=models.CASCADE, related_name="accesses", verbose_name="tool")
    granted_at = models.DateTimeField("granted at", default=timezone.now, editable=False)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="granted by",
        help_text="Who granted it; empty for grants made by an import or a migration.",
    )

    class Meta:
        verbose_name = "tool access"
        verbose_name_plural = "tool accesses"
        constraints = [models.UniqueConstraint(fields=["user", "tool"], name="tools_toolaccess_unique_user_tool")]

    def __str__(self) -> str:
        return f"{self.user} → {self.tool}"
