"""Deliberately broken OmniTool apps, for proving that `smoke` catches what it claims to.

Serve one with gunicorn's app-factory syntax:

    running_gunicorn(directory, app="tests.support.faulty_apps:with_portal('leaky')")

Each is the real project with only the portal view swapped (before the URLconf
is imported), so grants, tool pages and static files behave as deployed:

- `leaky`: lists every tool, whatever the user's grants (a tool without a grant is listed);
- `forgetful`: lists none of the user's tools (a granted tool is not listed).
"""
import os

import django
from django.core.handlers.wsgi import WSGIHandler


def with_portal(behaviour: str) -> WSGIHandler:
    """The project's WSGI app with the portal replaced by the broken `behaviour`."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "omnitool.settings")
    django.setup(set_prefix=False)

    from django.contrib.auth.decorators import login_required
    from django.shortcuts import render

    import tools.views
    from tools.models import Tool

    listings = {
        "leaky": lambda request: Tool.objects.order_by("name"),
        "forgetful": lambda request: Tool.objects.none(),
    }
    listing = listings[behaviour]

    @login_required
    def broken_portal(request):
        return render(request, "tools/portal.html", {"tools": listing(request)})

    # tools.urls binds `portal` when it is first imported, at the first request: after this.
    tools.views.portal = broken_portal
    return WSGIHandler()
