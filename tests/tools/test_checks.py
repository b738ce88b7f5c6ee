"""System checks on the catalogue (tools/checks.py)."""
from tools.catalogue import CATALOGUE, CatalogueTool
from tools.checks import check_catalogue

VIEW = "tools.pages.team_directory.team_directory"


def test_the_shipped_catalogue_passes():
    assert check_catalogue() == []


def test_duplicate_key_name_bad_slug_and_missing_view_are_errors(monkeypatch):
    monkeypatch.setattr(
        "tools.catalogue.CATALOGUE",
        (
            *CATALOGUE,
            CatalogueTool("team-directory", "Another", "", VIEW),
            CatalogueTool("fresh", "Invoice Generator", "", VIEW),
            CatalogueTool("not a slug", "Spaces", "", VIEW),
            CatalogueTool("ghost", "Ghost", "", "tools.pages.ghost.view"),
        ),
    )

    assert [(error.id, error.msg.split(":")[1].strip()) for error in check_catalogue()] == [
        ("tools.E001", "tool 'team-directory' is declared twice."),
        ("tools.E002", "tool 'fresh' reuses the name 'Invoice Generator'."),
        ("tools.E003", "tool 'not a slug'"),
        ("tools.E004", "tool 'ghost'"),
    ]
