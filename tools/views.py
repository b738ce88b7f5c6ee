"""The portal and the gate in front of every tool page.

Grants are enforced, not just hidden: a signed-in user without a grant gets 403
on the tool's URL (staff and superusers included), anonymous users are sent to
login.
"""
from collections.abc import Callable

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.module_loading import import_string

from tools.catalogue import CATALOGUE, CatalogueTool
from tools.models import Tool


@login_required
def portal(request: HttpRequest) -> HttpResponse:
    """The signed-in user's tools, and only those."""
    tools = Tool.objects.filter(accesses__user=request.user, key__in=[tool.key for tool in CATALOGUE]).order_by(
        "name"
    )
    return render(request, "tools/portal.html", {"tools": tools})


def tool_page(catalogue_tool: CatalogueTool) -> Callable[[HttpRequest], HttpResponse]:
    """The view for one catalogue tool: its page, behind login and the user's grant."""
    page = import_string(catalogue_tool.view)

    @login_required
    def view(request: HttpRequest) -> HttpResponse:
        tool = Tool.objects.filter(key=catalogue_tool.key, accesses__user=request.user).first()
        if tool is None:
            raise PermissionDenied(f"You have no access to {catalogue_tool.name}.")
        return page(request, tool)

    view.__name__ = view.__qualname__ = f"tool_page_{catalogue_tool.key.replace('-', '_')}"
    return view
