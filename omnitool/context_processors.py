"""Template context shared by every page: which environment this is."""
from django.conf import settings
from django.http import HttpRequest


def environment(request: HttpRequest) -> dict[str, str]:
    return {"omnitool_env": settings.OMNITOOL_ENV}
