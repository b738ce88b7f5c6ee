"""App configuration for tools: syncs the catalogue after every migrate."""
from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ToolsConfig(AppConfig):
    name = "tools"
    verbose_name = "Tools"

    def ready(self) -> None:
        from tools import checks  # noqa: F401  (registers the catalogue's system checks)
        from tools.sync import sync_catalogue_after_migrate

        post_migrate.connect(sync_catalogue_after_migrate, sender=self)
