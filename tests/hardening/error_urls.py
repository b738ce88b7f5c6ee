"""A URLconf for the error-page tests: the project's URLs plus one view that
fails, so a real 500 can be provoked with DEBUG off."""
from django.conf import settings
from django.urls import path

from omnitool.urls import urlpatterns as project_urlpatterns


def failing_view(request):
    # The message carries the secret on purpose: the 500 page must not show it.
    raise RuntimeError(f"boom with {settings.SECRET_KEY} and {settings.DATABASES['default'].get('PASSWORD')}")


urlpatterns = [path("hardening/fail/", failing_view), *project_urlpatterns]
