"""deploy/backups.py, deploy/databases.py and `manage.py backup`."""
import json
import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from deploy import databases
from deploy.backups import BackupError, find_backup, read_backup
from deploy.databases import DatabaseToolError
from tests.deploy.scratch_site import migrated_site, run_engine, site_template  # noqa: F401 (fixtures)

POSTGRESQL_SETTINGS = {
    "ENGINE": "django.db.backends.postgresql",
    "NAME": "omnitool",
    "USER": "deployer",
    "PASSWORD": "s3cret-pa55",
    "HOST": "db.example.com",
    "PORT": "6543",
    "OPTIONS": {"sslmode": "require"},
}


# Building the PostgreSQL commands --------------------------------------------------------------


def test_pg_dump_command__is_custom_format_and_never_carries_the_password(tmp_path):
    command = databases.pg_dump_command(POSTGRESQL_SETTINGS, tmp_path / "out.dump")

    assert command == [
        "pg_dump",
        "--format=custom",
        "--no-password",
        f"--file={tmp_path / 'out.dump'}",
        "--host=db.example.com",
        "--port=6543",
        "--username=deployer",
        "--dbname=omnitool",
    ]
    assert not any("s3cret" in argument for argument in command)


def test_pg_restore_command__cleans_in_one_transaction_without_owners(tmp_path):
    command = databases.pg_restore_command(POSTGRESQL_SETTINGS, tmp_path / "in.dump")

    assert command[:8] == [
        "pg_restore", "--clean", "--if-exists", "--single-transaction", "--exit-on-error",
        "--no-owner", "--no-privileges", "--no-password",
    ]
    assert command[-1] == str(tmp_path / "in.dump")
    assert not any("s3cret" in argument for argument in command)


def test_pg_environment__passes_password_and_tls_through_libpq_variables_only():
    environment = databases.pg_environment(
        POSTGRESQL_SETTINGS, base={"PATH": "/usr/bin", "PGPASSWORD": "from-the-shell", "PGDATABASE": "other"}
    )

    assert environment == {"PATH": "/usr/bin", "PGPASSWORD": "s3cret-pa55", "PGSSLMODE": "require"}


def test_pg_tool__missing_from_path_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(DatabaseToolError) as error:
        databases.require_pg_tool("pg_dump", 150004)

    assert str(error.value) == (
        "pg_dump was not found on PATH; install the PostgreSQL client tools "
        "(the same major version as the server or newer)"
    )


def test_pg_tool__older_than_the_server_is_a_clear_error(tmp_path, monkeypatch):
    fake = tmp_path / "pg_dump"
    fake.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 14.9 (Debian 14.9-1)'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(DatabaseToolError) as error:
        databases.require_pg_tool("pg_dump", 160002)

    assert str(error.value) == (
        "pg_dump 14.9 is older than the PostgreSQL 16 server; install the PostgreSQL 16 client tools"
    )


def test_pg_tool__same_major_version_as_the_server_is_accepted(tmp_path, monkeypatch):
    fake = tmp_path / "pg_dump"
    fake.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 16.1'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(tmp_path))

    assert databases.require_pg_tool("pg_dump", 160004) == str(fake)


# Finding backups --------------------------------------------------------------------------------


def test_find_backup__without_any_backups_says_how_to_take_one(settings, tmp_path):
    settings.BACKUP_DIR = tmp_path

    with pytest.raises(BackupError) as error:
        find_backup(None)

    assert str(error.value) == f"there are no backups in {tmp_path}; take one with `manage.py backup`"


def test_find_backup__newest_means_the_newest_of_this_environment_and_engine(tmp_path):
    for name in (
        "20261101T100000Z-production-nightly.dump",
        "20261102T100000Z-production-nightly.sqlite3",
        "20261103T100000Z-local-nightly.dump",
    ):
        (tmp_path / name).write_bytes(b"")

    backup = find_backup(None, tmp_path, environment="production", engine="postgresql")

    assert backup.id == "20261101T100000Z-production-nightly"


def test_find_backup__none_of_this_environment_is_a_clear_error(tmp_path):
    (tmp_path / "20261103T100000Z-local-nightly.dump").write_bytes(b"")

    with pytest.raises(BackupError, match=r"none of the 1 backups in .* is a postgresql backup of production"):
        find_backup(None, tmp_path, environment="production", engine="postgresql")


def test_read_backup__without_a_manifest_takes_time_environment_and_label_from_the_name(tmp_path):
    path = tmp_path / "20261125T140543Z-staging-before-release.dump"
    path.write_bytes(b"PGDMP")

    backup = read_backup(path)

    assert (backup.id, backup.environment, backup.label, backup.engine, backup.size) == (
        "20261125T140543Z-staging-before-release", "staging", "before-release", "postgresql", 5
    )
    assert backup.created_at == datetime(2026, 11, 25, 14, 5, 43, tzinfo=UTC)


@pytest.mark.parametrize("name", [":memory:", "file:memorydb_default?mode=memory&cache=shared"])
def test_sqlite_path__an_in_memory_database_is_a_clear_error(name):
    with pytest.raises(DatabaseToolError) as error:
        databases.sqlite_path({"ENGINE": "django.db.backends.sqlite3", "NAME": name})

    assert str(error.value) == "the SQLite database is in memory; there is no file to back up or restore"


# Taking backups (a site of its own, through manage.py) -----------------------------------------


def test_backup__writes_a_private_file_and_a_manifest_naming_time_environment_and_label(migrated_site):
    result = migrated_site.ok("backup", "--label", "Before Release", "--format", "json")

    backup = json.loads(result.stdout)["backup"]
    path = Path(backup["path"])
    manifest = json.loads(path.with_suffix(".json").read_text())
    assert path.parent == migrated_site.backup_dir
    assert path.name.endswith("-local-before-release" + (".sqlite3" if run_engine() == "sqlite" else ".dump"))
    assert manifest["environment"] == "local" and manifest["label"] == "before-release"
    assert manifest["engine"] == run_engine() and manifest["size"] == path.stat().st_size
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(os.listdir(migrated_site.backup_dir)) == sorted([path.name, path.with_suffix(".json").name])


def test_backup__retention_leaves_exactly_the_newest_n(migrated_site):
    made = [
        json.loads(migrated_site.ok("backup", "--keep", "2", "--label", f"run-{run}", "--format", "json").stdout)
        for run in range(3)
    ]

    listed = migrated_site.backups()
    assert [backup["id"] for backup in listed] == [made[2]["backup"]["id"], made[1]["backup"]["id"]]
    assert made[2]["deleted"] == [made[0]["backup"]["id"]]
    assert len(list(migrated_site.backup_dir.glob("*.json"))) == 2


def test_backup_list__shows_id_size_age_and_label_newest_first(migrated_site):
    first = json.loads(migrated_site.ok("backup", "--label", "nightly", "--format", "json").stdout)["backup"]
    second = json.loads(migrated_site.ok("backup", "--format", "json").stdout)["backup"]

    lines = migrated_site.ok("backup", "--list").stdout.splitlines()

    assert len(lines) == 3
    assert lines[0].split() == ["ID", "SIZE", "AGE", "LABEL"]
    assert re.fullmatch(rf"{second['id']}\s+\d+\.\d (KiB|MiB)\s+\d s\s*", lines[1])
    assert re.fullmatch(rf"{first['id']}\s+\d+\.\d (KiB|MiB)\s+\d s  nightly", lines[2])
