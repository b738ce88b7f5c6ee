"""The catalogue: every tool that exists, declared in code.

After `migrate`, the database holds exactly these tools (see `tools.sync`).
To add a tool, add an entry here and a page under `tools/pages/`. To rename a
key or remove a tool, also write a data migration with `tools.operations`
(README: "Add, rename or delete a tool").
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class CatalogueTool:
    """One tool as the code declares it."""

    key: str
    name: str
    description: str
    view: str  # dotted path of the page's view function

    @property
    def url(self) -> str:
        return f"/tools/{self.key}/"


CATALOGUE: tuple[CatalogueTool, ...] = (
    CatalogueTool(
        key="invoice-generator",
        name="Invoice Generator",
        description="Enter line items and get the subtotal, tax and total of an invoice.",
        view="tools.pages.invoice_generator.invoice_generator",
    ),
    CatalogueTool(
        key="email-templates",
        name="Email Templates",
        description="The company's standard customer emails, ready to copy.",
        view="tools.pages.email_templates.email_templates",
    ),
    CatalogueTool(
        key="team-directory",
        name="Team Directory",
        description="Who is who: names and emails of everyone with an active account.",
        view="tools.pages.team_directory.team_directory",
    ),
)


def catalogue_by_key() -> dict[str, CatalogueTool]:
    return {tool.key: tool for tool in CATALOGUE}
