"""deploy/rollback.py and `manage.py rollback`: whole-database restores (a site of its own,
through manage.py) and access-only restores (in the test database, through call_command)."""
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from deploy.snapshots import take_access_snapshot
from tests.conftest import grant_pairs
from tests.deploy.scratch_site import PRODUCTION, migrated_site, site_template  # noqa: F401 (fixtures)
from tools.models import Tool, ToolAccess

CHANGE_USERS_TOOLS_AND_GRANTS = """
from django.contrib.auth import get_user_model
from tools.models import Tool, ToolAccess
User = get_user_model()
User.objects.filter(username="carol").delete()
eve = User.objects.create_user("eve", "eve@example.com")
scratch = Tool.objects.create(key="scratch-pad", name="Scratch Pad")
ToolAccess.objects.create(user=eve, tool=scratch)
ToolAccess.objects.filter(user__username="alice").delete()
Tool.objects.filter(key="team-directory").update(name="Team Directory (renamed)")
"""
CREATE_A_TABLE = (
    "from django.db import connection; connection.cursor().execute('CREATE TABLE created_after_backup (id integer)')"
)
TABLE_NAMES = "from django.db import connection; print(sorted(connection.introspection.table_names()))"


def backup_id(site, *arguments: str, **environment: str) -> str:
    return json.loads(site.ok("backup", "--format", "json", *arguments, **environment).stdout)["backup"]["id"]


# Whole-database rollback -------------------------------------------------------------------------


def test_rollback__restores_the_export_and_row_counts_from_before_users_tools_and_grants_changed(migrated_site):
    site = migrated_site
    exported_before, counts_before = site.state()
    tables_before = site.shell(TABLE_NAMES)
    restored_id = backup_id(site)
    site.shell(CHANGE_USERS_TOOLS_AND_GRANTS + CREATE_A_TABLE)
    assert site.exported_access() != exported_before

    result = json.loads(site.ok("rollback", "--noinput", "--format", "json").stdout)

    assert result["restored"]["id"] == restored_id
    exported_after, counts_after = site.state()
    assert exported_after == exported_before
    # The one extra row: the access snapshot of the grants from just before the rollback, written back.
    assert counts_after.pop("deploy.AccessSnapshot") == counts_before.pop("deploy.AccessSnapshot") + 1
    assert counts_after == counts_before
    assert site.shell(TABLE_NAMES) == tables_before  # a table newer than the backup does not survive it
    assert result["access_snapshot"] is not None and result["unapplied_migrations"] == []


def test_rollback__takes_a_safety_backup_and_retention_never_deletes_the_backup_it_restores(migrated_site):
    site = migrated_site
    restored_id = backup_id(site, "--label", "only-one-kept", BACKUP_KEEP="1")

    result = json.loads(site.ok("rollback", "--noinput", "--format", "json", BACKUP_KEEP="1").stdout)

    safety = result["safety_backup"]
    assert safety["label"] == "before-rollback"
    assert [backup["id"] for backup in site.backups()] == [safety["id"], restored_id]


def test_rollback__dry_run_says_what_would_be_restored_and_from_when_and_changes_nothing(migrated_site):
    site = migrated_site
    restored_id = backup_id(site, "--label", "nightly")
    site.shell(CHANGE_USERS_TOOLS_AND_GRANTS)
    exported, counts = site.state()

    result = site.ok("rollback", "--dry-run")

    stamp = f"{restored_id[0:4]}-{restored_id[4:6]}-{restored_id[6:8]} {restored_id[9:11]}:{restored_id[11:13]}"
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"Would restore backup {restored_id}, taken {stamp}:")
    assert lines[0].endswith(f" ago) in local, label 'nightly', into {site.database_description}.")
    assert lines[1:] == ["A safety backup (before-rollback) would be taken first. Nothing was changed."]
    assert site.state() == (exported, counts)
    assert [backup["id"] for backup in site.backups()] == [restored_id]


@pytest.mark.parametrize("manifest", ["kept", "lost"])
def test_rollback__a_truncated_backup_is_refused_and_nothing_changes(migrated_site, manifest):
    site = migrated_site
    restored_id = backup_id(site)
    path = next(site.backup_dir.glob(f"{restored_id}.*[!n]"))  # the backup, not its .json manifest
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    if manifest == "lost":
        path.with_suffix(".json").unlink()
    site.shell(CHANGE_USERS_TOOLS_AND_GRANTS)
    exported, counts = site.state()

    result = site.manage("rollback", "--noinput")

    assert result.returncode == 1
    assert result.stderr.startswith(f"CommandError: backup {restored_id} is damaged: ")
    assert result.stderr.rstrip().endswith("; nothing was changed") and len(result.stderr.splitlines()) == 1
    assert site.state() == (exported, counts)
    assert sorted(path.name for path in site.backup_dir.iterdir()) == sorted(
        [path.name] + ([path.with_suffix(".json").name] if manifest == "kept" else [])
    )


def test_rollback__a_backup_from_another_environment_is_refused(migrated_site):
    site = migrated_site
    restored_id = backup_id(site)
    exported = site.exported_access()

    staging = {**PRODUCTION, "OMNITOOL_ENV": "staging"}

    result = site.manage("rollback", restored_id, "--noinput", "--confirm", "staging", **staging)

    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"CommandError: backup {restored_id} was taken in local, not staging; restore only this environment's "
        "backups (copy_database refreshes from another one); nothing was changed"
    )
    assert site.exported_access() == exported


def test_rollback__in_production_without_confirmation_exits_1_and_changes_nothing(migrated_site):
    site = migrated_site
    backup_id(site, **PRODUCTION)
    site.shell(CHANGE_USERS_TOOLS_AND_GRANTS)
    exported, counts = site.state()

    result = site.manage("rollback", "--noinput", **PRODUCTION)

    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        "in production needs confirmation: pass --noinput --confirm production; nothing was changed."
    )
    assert site.state() == (exported, counts)
    assert len(site.backups()) == 1  # no safety backup either


def test_rollback__a_missing_backup_is_a_clear_error(db, settings, tmp_path):
    settings.BACKUP_DIR = tmp_path

    with pytest.raises(CommandError) as error:
        call_command("rollback", "20261125T000000Z-local", "--noinput")

    assert str(error.value) == (
        f"no backup '20261125T000000Z-local' in {tmp_path}; `manage.py backup --list` shows them; nothing was changed"
    )


# Access-only rollback ----------------------------------------------------------------------------


def test_rollback_access_only__restores_the_grants_and_nothing_else(demo_data, make_user, make_tool, grant):
    grants_before = grant_pairs()
    snapshot = take_access_snapshot("before the test")
    ToolAccess.objects.filter(user__username="alice").delete()
    eve, scratch = make_user("eve"), make_tool("scratch-pad")
    grant(eve, scratch)
    grant(eve, Tool.objects.get(key="team-directory"))
    Tool.objects.filter(key="email-templates").update(description="Changed since")

    call_command("rollback", "--access-only", str(snapshot.pk), "--noinput", verbosity=0)

    assert grant_pairs() == grants_before
    assert get_user_model().objects.filter(username="eve").exists()
    assert Tool.objects.filter(key="scratch-pad").exists()
    assert Tool.objects.get(key="email-templates").description == "Changed since"


def test_rollback_access_only__stores_the_grants_it_replaces_so_it_can_be_undone(demo_data):
    snapshot = take_access_snapshot("before the test")
    ToolAccess.objects.filter(user__username="bob").delete()
    grants_replaced = grant_pairs()

    call_command("rollback", "--access-only", str(snapshot.pk), "--noinput", verbosity=0)
    call_command("rollback", "--access-only", "--noinput", verbosity=0)  # the newest: taken by the first

    assert grant_pairs() == grants_replaced


def test_rollback_access_only__dry_run_prints_the_plan_and_changes_nothing(demo_data, capsys):
    snapshot = take_access_snapshot("before the test")
    ToolAccess.objects.filter(user__username="alice", tool__key="email-templates").delete()
    grants = grant_pairs()

    call_command("rollback", "--access-only", "--dry-run", verbosity=2)

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"Would restore the grants of access snapshot #{snapshot.pk}, taken ")
    assert lines[1:] == [
        "  grants to add 1, to remove 0, unchanged 9",
        "  email-templates: add alice",
        "Dry run: nothing was changed.",
    ]
    assert grant_pairs() == grants


def test_rollback_access_only__an_unknown_snapshot_is_a_clear_error(db):
    with pytest.raises(CommandError) as error:
        call_command("rollback", "--access-only", "999999", "--noinput")

    assert str(error.value).startswith("no access snapshot #999999; ")
    assert str(error.value).endswith("; nothing was changed")


def test_rollback_access_only__in_production_without_confirmation_changes_nothing(demo_data, settings):
    snapshot = take_access_snapshot("before the test")
    ToolAccess.objects.filter(user__username="alice").delete()
    grants = grant_pairs()
    settings.OMNITOOL_ENV = "production"
    snapshot.environment = "production"
    snapshot.save()

    with pytest.raises(CommandError) as error:
        call_command("rollback", "--access-only", "--noinput")

    assert "in production needs confirmation: pass --noinput --confirm production" in str(error.value)
    assert grant_pairs() == grants
