"""App configuration for deploy."""
from django.apps import AppConfig


class DeployConfig(AppConfig):
    name = "deploy"
    verbose_name = "Deploy"

    def ready(self) -> None:
        from deploy import system_checks  # noqa: F401  (registers omnitool.E001)
