"""The portal at / and one URL per catalogue tool at /tools/<key>/."""
from django.urls import path

from tools.catalogue import CATALOGUE
from tools.views import portal, tool_page

urlpatterns = [
    path("", portal, name="portal"),
    *(path(f"tools/{tool.key}/", tool_page(tool), name=f"tool-{tool.key}") for tool in CATALOGUE),
]
