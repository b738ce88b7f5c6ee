"""RenameTool / RemoveTool (tools/operations.py) through real migrations:
the repository's own 0002 (rename) and 0003 (removal), run forwards and back."""
import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS

from tests.conftest import grant_pairs
from tools.catalogue import CATALOGUE
from tools.models import Tool, ToolAccess
from tools.operations import RemoveTool, RenameTool, rename_tool

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE_RENAME = "0001_initial"
BEFORE_REMOVAL = "0002_rename_email_templates_management"


@pytest.fixture
def tools_migrated_to():
    """Migrate tools back to a migration for the test; always forwards again after."""

    def migrate_to(name: str) -> None:
        call_command("migrate", "tools", name, verbosity=0)

    yield migrate_to
    call_command("migrate", verbosity=0)


@pytest.fixture
def people(make_user):
    return {name: make_user(name) for name in ("alice", "bob", "carol")}


def migrate_forwards() -> None:
    call_command("migrate", verbosity=0)


def test_migrating_forward_moves_every_grant_from_the_old_key_to_the_new_key(tools_migrated_to, people):
    tools_migrated_to(BEFORE_RENAME)  # the database as it was before the rename
    old = Tool.objects.get(key="email-templates-management")
    assert not Tool.objects.filter(key="email-templates").exists()
    for person in people.values():
        ToolAccess.objects.create(user=person, tool=old)

    migrate_forwards()

    assert {pair for pair in grant_pairs()} == {(name, "email-templates") for name in people}
    assert not Tool.objects.filter(key="email-templates-management").exists()
    assert Tool.objects.get(key="email-templates").name == "Email Templates"


def test_migrating_backward_restores_the_grants_under_the_old_key(tools_migrated_to, people, grant):
    tool = Tool.objects.get(key="email-templates")
    grant(people["alice"], tool)
    grant(people["bob"], tool)

    tools_migrated_to(BEFORE_RENAME)

    assert grant_pairs() == {("alice", "email-templates-management"), ("bob", "email-templates-management")}
    assert Tool.objects.get(key="email-templates-management").name == "Email Templates management"


def test_rename_onto_an_existing_key_merges_grants_without_duplicates(tools_migrated_to, people, grant):
    tools_migrated_to(BEFORE_RENAME)
    old = Tool.objects.get(key="email-templates-management")
    new = Tool.objects.create(key="email-templates", name="Email Templates")  # say, made by hand, already granted
    grant(people["alice"], old)
    grant(people["bob"], old)
    grant(people["bob"], new)
    grant(people["carol"], new)

    migrate_forwards()

    assert grant_pairs() == {(name, "email-templates") for name in ("alice", "bob", "carol")}
    assert ToolAccess.objects.count() == 3
    assert not Tool.objects.filter(key="email-templates-management").exists()


def test_removal_deletes_the_tool_and_its_grants(tools_migrated_to, people, grant):
    tools_migrated_to(BEFORE_REMOVAL)  # the reverse of the removal recreated the tool
    legacy = Tool.objects.get(key="legacy-reports")
    grant(people["alice"], legacy)
    grant(people["alice"], Tool.objects.get(key="invoice-generator"))

    migrate_forwards()

    assert not Tool.objects.filter(key="legacy-reports").exists()
    assert grant_pairs() == {("alice", "invoice-generator")}


def test_removal_reversed_recreates_the_tool_without_grants(tools_migrated_to):
    tools_migrated_to(BEFORE_REMOVAL)

    legacy = Tool.objects.get(key="legacy-reports")
    assert legacy.name == "Legacy Reports"
    assert legacy.accesses.count() == 0


def test_operations_are_no_ops_on_a_fresh_database():
    assert sorted(Tool.objects.values_list("key", flat=True)) == sorted(tool.key for tool in CATALOGUE)


def test_rename_and_remove_twice_change_nothing_the_second_time(people, grant):
    tool = Tool.objects.get(key="team-directory")
    grant(people["alice"], tool)

    assert rename_tool(apps, DEFAULT_DB_ALIAS, "team-directory", "people") == "renamed tool 'team-directory' to 'people'"
    assert rename_tool(apps, DEFAULT_DB_ALIAS, "team-directory", "people") == (
        "no tool 'team-directory': nothing to rename"
    )
    assert grant_pairs() == {("alice", "people")}


def test_operations_deconstruct_to_their_arguments():
    rename = RenameTool("a", "b", new_name="B", old_name="A")
    remove = RemoveTool("c", name="C")

    assert rename.deconstruct() == ("RenameTool", [], {"old_key": "a", "new_key": "b", "new_name": "B", "old_name": "A"})
    assert remove.deconstruct() == ("RemoveTool", [], {"key": "c", "name": "C"})
    assert rename.describe() == "Rename tool 'a' to 'b'"
    assert rename.migration_name_fragment == "rename_tool_a_b"
