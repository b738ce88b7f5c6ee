"""Catalogue sync (tools/sync.py) and the post_migrate hook."""
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tools.catalogue import CATALOGUE, CatalogueTool
from tools.models import Tool, ToolAccess
from tools.sync import CatalogueConflict, diff_catalogue, sync_catalogue

pytestmark = pytest.mark.django_db


def database_tools() -> dict[str, tuple[str, str]]:
    return {tool.key: (tool.name, tool.description) for tool in Tool.objects.all()}


def catalogue_tools() -> dict[str, tuple[str, str]]:
    return {tool.key: (tool.name, tool.description) for tool in CATALOGUE}


def test_after_migrate_the_database_holds_exactly_the_catalogue():
    assert database_tools() == catalogue_tools()


def test_sync__creates_missing_tools():
    Tool.objects.filter(key="team-directory").delete()

    diff = sync_catalogue()

    assert [tool.key for tool in diff.to_create] == ["team-directory"]
    assert database_tools() == catalogue_tools()


def test_sync__updates_changed_names_and_descriptions():
    Tool.objects.filter(key="email-templates").update(name="Old name", description="old")

    diff = sync_catalogue()

    assert diff.to_update[0].changes == {
        "name": ("Old name", "Email Templates"),
        "description": ("old", "The company's standard customer emails, ready to copy."),
    }
    assert database_tools() == catalogue_tools()


def test_sync__never_deletes_a_tool_the_catalogue_lacks(make_user, make_tool, grant):
    stray = make_tool("stray-tool", "Stray Tool")
    grant(make_user("alice"), stray)

    diff = sync_catalogue()

    assert [tool.key for tool in diff.not_in_catalogue] == ["stray-tool"]
    assert Tool.objects.filter(key="stray-tool").exists()
    assert ToolAccess.objects.filter(tool=stray).count() == 1


def test_sync__second_run_writes_nothing(django_assert_num_queries):
    Tool.objects.all().delete()
    sync_catalogue()

    with django_assert_num_queries(1):  # the read, and no write
        diff = sync_catalogue()

    assert not diff.needs_sync


def test_sync__a_catalogue_name_held_by_another_tool_is_a_clear_conflict(make_tool):
    make_tool("old-team-directory", "Team Directory Next")
    catalogue = (*CATALOGUE[:2], CatalogueTool("team-directory", "Team Directory Next", "", "x.y"))
    diff = diff_catalogue(catalogue)

    from tools.sync import apply_catalogue_diff

    with pytest.raises(CatalogueConflict, match="'team-directory' wants the name 'Team Directory Next', "
                                                 "which tool 'old-team-directory' holds"):
        apply_catalogue_diff(diff)
    assert Tool.objects.get(key="team-directory").name == "Team Directory"


def test_diff__lines_name_every_difference(make_tool):
    Tool.objects.filter(key="team-directory").delete()
    Tool.objects.filter(key="email-templates").update(name="Email Templates management")
    make_tool("legacy-thing", "Legacy Thing")

    assert diff_catalogue().lines() == [
        "create team-directory (Team Directory)",
        "update email-templates: name 'Email Templates management' -> 'Email Templates'",
        "not in catalogue: legacy-thing (Legacy Thing); rename or remove it with a data migration",
    ]


@pytest.mark.django_db(transaction=True)
def test_post_migrate_sync_waits_until_tools_is_fully_migrated(capsys):
    try:
        call_command("migrate", "tools", "0002", verbosity=1)
        assert "Catalogue sync skipped: the tools app is not fully migrated." in capsys.readouterr().out
    finally:
        call_command("migrate", verbosity=0)
    assert database_tools() == catalogue_tools()


def test_sync_tools_check__passes_when_database_equals_catalogue(capsys):
    call_command("sync_tools", "--check")

    assert capsys.readouterr().out == "Catalogue and database agree.\n"


def test_sync_tools_check__fails_naming_each_difference_and_writes_nothing(capsys):
    Tool.objects.filter(key="invoice-generator").update(name="Invoices")

    with pytest.raises(CommandError, match=r"^Catalogue and database differ \(1 difference\)\.$"):
        call_command("sync_tools", "--check")

    assert "update invoice-generator: name 'Invoices' -> 'Invoice Generator'" in capsys.readouterr().err
    assert Tool.objects.get(key="invoice-generator").name == "Invoices"


def test_sync_tools_dry_run__prints_and_writes_nothing(capsys):
    Tool.objects.filter(key="team-directory").delete()

    call_command("sync_tools", "--dry-run")

    assert capsys.readouterr().out == "would create team-directory (Team Directory)\n"
    assert not Tool.objects.filter(key="team-directory").exists()


def test_sync_tools__applies_and_reports(capsys):
    Tool.objects.filter(key="team-directory").delete()

    call_command("sync_tools")

    assert capsys.readouterr().out.splitlines() == [
        "create team-directory (Team Directory)",
        "Synced: 1 created, 0 updated.",
    ]
    assert database_tools() == catalogue_tools()
