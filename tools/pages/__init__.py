"""The tools' own pages. Each view is reached only through `tools.views.tool_page`,
which has already checked the user's grant."""
