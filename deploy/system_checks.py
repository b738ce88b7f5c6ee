"""Django system checks for deployment invariants: settings that must never
reach staging or production stop start-up (`manage.py check`, migrate,
release) and fail `verify_deploy`'s deploy-checks."""
from django.conf import settings
from django.core.checks import Error, register


@register()
def check_debug_is_off_outside_local(app_configs=None, **kwargs) -> list[Error]:
    if settings.OMNITOOL_ENV != "local" and settings.DEBUG:
        return [
            Error(
                f"DEBUG is on with OMNITOOL_ENV={settings.OMNITOOL_ENV}: error pages would show settings and code.",
                hint="Unset DEBUG (it defaults to off outside local).",
                id="omnitool.E001",
            )
        ]
    return []
