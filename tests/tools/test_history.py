"""Tool key history (tools/history.py): a key renamed in the catalogue without
a migration is caught before it reaches a database."""
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tools.catalogue import CATALOGUE, CatalogueTool
from tools.history import KeyChange, carry_keys_forward, tool_key_changes
from tools.models import Tool

ACCESS_FILE = Path(__file__).resolve().parents[2] / "fixtures" / "access.json"


def committed_access_file_keys() -> set[str]:
    return {tool["key"] for tool in json.loads(ACCESS_FILE.read_text())["tools"]}


def keys_without_a_home(catalogue: tuple[CatalogueTool, ...]) -> set[str]:
    """Keys a deployed database holds (the committed access file lists them) that
    migrate would leave behind with no catalogue entry."""
    return carry_keys_forward(committed_access_file_keys()) - {tool.key for tool in catalogue}


def test_migrations_record_the_seeds_rename_and_removal_in_order():
    assert tool_key_changes() == [
        KeyChange("tools.0002_rename_email_templates_management", "email-templates-management", "email-templates"),
        KeyChange("tools.0003_remove_legacy_reports", "legacy-reports", None),
    ]


def test_carry_keys_forward__follows_renames_and_drops_removed_keys():
    assert carry_keys_forward({"email-templates-management", "legacy-reports", "invoice-generator"}) == {
        "email-templates",
        "invoice-generator",
    }


def test_every_deployed_key_reaches_the_catalogue_through_migrations():
    """Fails when a catalogue key is renamed (or dropped) without a RenameTool /
    RemoveTool migration: the key in the committed access file has nowhere to go."""
    assert keys_without_a_home(CATALOGUE) == set()


def test_a_key_renamed_in_the_catalogue_without_a_migration_is_caught():
    renamed = tuple(
        CatalogueTool("email-tmpl", tool.name, tool.description, tool.view) if tool.key == "email-templates" else tool
        for tool in CATALOGUE
    )

    assert keys_without_a_home(renamed) == {"email-templates"}


@pytest.mark.django_db
def test_a_key_renamed_in_the_catalogue_without_a_migration_fails_sync_tools_check(monkeypatch, capsys):
    renamed = tuple(
        CatalogueTool("email-tmpl", "Email Templates v2", tool.description, tool.view)
        if tool.key == "email-templates"
        else tool
        for tool in CATALOGUE
    )
    monkeypatch.setattr("tools.catalogue.CATALOGUE", renamed)

    with pytest.raises(CommandError):
        call_command("sync_tools", "--check")

    errors = capsys.readouterr().err
    assert "create email-tmpl (Email Templates v2)" in errors
    assert "not in catalogue: email-templates (Email Templates)" in errors
    assert Tool.objects.filter(key="email-templates").exists()
