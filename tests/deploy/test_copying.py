"""`copy_database` on real databases of the engine the suite runs on, so that
the SQLite run proves SQLite copies (temporary files) and the PostgreSQL run
PostgreSQL copies (databases omnitool_d_* of their own on the test server,
cloned from templates and dropped afterwards). Copies run as `manage.py`
subprocesses with DATABASE_URL set to the target, as in a deployment; results
are read with `export_access` and plain SQL on both sides.

Refusals that never reach the target run in-process against the test database.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import dj_database_url
import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from deploy.copying import CopyPlan, same_database_settings
from deploy.models import AccessSnapshot
from tests.support.databases import create_database, database_url, drop_databases
from tools.models import ToolAccess

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cret-Pa55word"

FAST_HASHER = """
from django.conf import settings
settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only
"""

SOURCE_DATA = FAST_HASHER + """
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from deploy.models import AccessSnapshot
from tools.demo import load_demo_data

User = get_user_model()
load_demo_data()  # admin (staff, superuser) and alice, bob, carol, dave, user_a with passwords, and grants
User.objects.create_user("sam", "sam@example.com", "sam-staff-password", is_staff=True)
User.objects.create_user("pat", "pat@example.com", None)  # already unusable: not counted again
for _ in range(3):
    SessionStore().create()
for reason in ("before import_access", "before rollback"):
    AccessSnapshot.objects.create(environment="production", reason=reason, document=b"", sha256="0" * 64)
"""

TARGET_DATA = FAST_HASHER + """
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from deploy.models import AccessSnapshot
from tools.models import Tool, ToolAccess

User = get_user_model()
old = User.objects.create_user("old_tester", "old_tester@example.com", "old-password")
User.objects.create_user("alice", "alice@staging.example.com", "staging-alice")
ToolAccess.objects.create(user=old, tool=Tool.objects.get(key="email-templates"))
SessionStore().create()
AccessSnapshot.objects.create(environment="local", reason="before import_access", document=b"", sha256="1" * 64)
"""

# The source as an older release left it: tools.0003 not yet applied, a tool's name out of date.
SOURCE_BEHIND_THE_CODE = """
from django.db import connection
from tools.models import Tool

with connection.cursor() as cursor:
    cursor.execute("DELETE FROM django_migrations WHERE app = 'tools' AND name = '0003_remove_legacy_reports'")
Tool.objects.filter(key="team-directory").update(name="Staff Directory (old)")
"""


# Databases --------------------------------------------------------------------------------------


class SqliteServer:
    """Makes SQLite database files from one migrated template file."""

    engine = "sqlite"

    def __init__(self, directory: Path):
        self.directory = directory

    def url(self, name: str) -> str:
        return f"sqlite:///{self.directory / name}.sqlite3"

    def create(self, name: str, template: str | None = None) -> str:
        if template:
            shutil.copyfile(self.directory / f"{template}.sqlite3", self.directory / f"{name}.sqlite3")
        return self.url(name)

    def query(self, url: str, sql: str) -> list[tuple]:
        import sqlite3

        connection = sqlite3.connect(dj_database_url.parse(url)["NAME"])
        try:
            return connection.execute(sql).fetchall()
        finally:
            connection.close()

    def drop_all(self) -> None:
        pass  # tmp_path_factory cleans up


class PostgresqlServer:
    """Creates and drops databases named omnitool_d_<purpose>_<random> on the test server."""

    engine = "postgresql"

    def __init__(self, settings_dict: dict):
        self.settings_dict = settings_dict
        self.suffix = uuid.uuid4().hex[:8]
        self.created: list[str] = []

    def name(self, purpose: str) -> str:
        return f"omnitool_d_{purpose}_{self.suffix}"

    def url(self, name: str, password: str = "") -> str:
        return database_url(name, password=password)

    def create(self, purpose: str, template: str | None = None) -> str:
        """A new database's URL, with a password (the trusting test server ignores it) that output must hide."""
        name = self.name(purpose)
        create_database(name, template and self.name(template))
        self.created.append(name)
        return self.url(name, password=self.settings_dict.get("PASSWORD") or SECRET)

    def query(self, url: str, sql: str) -> list[tuple]:
        import psycopg2

        settings_dict = dj_database_url.parse(url)
        connection = psycopg2.connect(
            dbname=settings_dict["NAME"],
            user=settings_dict["USER"] or None,
            password=settings_dict["PASSWORD"] or None,
            host=settings_dict["HOST"] or None,
            port=settings_dict["PORT"] or None,
        )
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchall()
        finally:
            connection.close()

    def drop_all(self) -> None:
        drop_databases(*reversed(self.created))


def closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def manage(*args: str, database_url: str, backup_dir: Path, extra_env: dict | None = None):
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "BACKUP_DIR", "OMNITOOL_ENV", "PGPASSWORD", "DEPLOY_WEBHOOK_URL"}
    }
    environment.update(DATABASE_URL=database_url, BACKUP_DIR=str(backup_dir), OMNITOOL_ENV="local")
    environment.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


def manage_ok(*args: str, **kwargs) -> subprocess.CompletedProcess:
    result = manage(*args, **kwargs)
    assert result.returncode == 0, f"manage.py {' '.join(args[:1])} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Where copies happen: the engine the suite runs on (SQLite files, or databases on the test
    PostgreSQL server), so that each of the two CI runs proves its own engine."""
    directory = tmp_path_factory.mktemp("copy")
    if connection.vendor == "postgresql":
        made = PostgresqlServer(dict(connection.settings_dict))
    else:
        made = SqliteServer(directory)
    try:
        # Templates that each test clones: a migrated database, then a source and a target with their data.
        unused = directory / "unused"
        manage_ok("migrate", "--verbosity", "0", database_url=made.create("migrated"), backup_dir=unused)
        manage_ok("shell", "-c", SOURCE_DATA, database_url=made.create("source", "migrated"), backup_dir=unused)
        manage_ok("shell", "-c", TARGET_DATA, database_url=made.create("target", "migrated"), backup_dir=unused)
        yield made
    finally:
        made.drop_all()


@dataclass
class Copy:
    """A source and a target made for one copy, and what running copy_database printed."""

    server: object
    source: str
    target: str
    backup_dir: Path
    result: subprocess.CompletedProcess | None = None
    source_passwords: dict[str, str] | None = None  # as they were before the copy

    def manage(self, *args: str, database_url: str | None = None, **kwargs):
        return manage(*args, database_url=database_url or self.target, backup_dir=self.backup_dir, **kwargs)

    def copy(self, *flags: str) -> subprocess.CompletedProcess:
        self.result = self.manage("copy_database", "--from", self.source, "--noinput", *flags)
        return self.result

    def export_access(self, url: str) -> str:
        return manage_ok("export_access", "--output", "-", database_url=url, backup_dir=self.backup_dir).stdout

    def query(self, url: str, sql: str) -> list[tuple]:
        return self.server.query(url, sql)

    def passwords(self, url: str) -> dict[str, str]:
        return dict(self.query(url, "SELECT username, password FROM accounts_user"))


def prepare(server, tmp_path_factory, label: str, source_script: str = "") -> Copy:
    """A fresh source and target cloned from the templates; `source_script` then changes the source."""
    source = server.create(f"src_{label}", template="source")
    target = server.create(f"tgt_{label}", template="target")
    backup_dir = tmp_path_factory.mktemp(f"backups-{label}")
    if source_script:
        manage_ok("shell", "-c", source_script, database_url=source, backup_dir=backup_dir)
    return Copy(server, source, target, backup_dir)


@pytest.fixture(scope="module")
def copied(server, tmp_path_factory) -> Copy:
    """One copy from a production-like source into a target with data of its own."""
    prepared = prepare(server, tmp_path_factory, "main")
    prepared.source_passwords = prepared.passwords(prepared.source)
    prepared.copy("--format", "json")
    assert prepared.result.returncode == 0, prepared.result.stderr
    return prepared


# A copy -----------------------------------------------------------------------------------------


def test_copy__targets_access_file_equals_the_sources(copied):
    assert copied.export_access(copied.target) == copied.export_access(copied.source)


def test_copy__targets_users_equal_the_sources(copied):
    users = "SELECT username, email, is_staff, is_superuser, is_active FROM accounts_user ORDER BY username"

    assert copied.query(copied.target, users) == copied.query(copied.source, users)


def test_copy__deletes_every_session(copied):
    assert copied.query(copied.target, "SELECT count(*) FROM django_session") == [(0,)]


def test_copy__makes_non_staff_passwords_unusable(copied):
    passwords = copied.passwords(copied.target)
    non_staff = {row[0] for row in copied.query(copied.target, "SELECT username FROM accounts_user WHERE NOT is_staff")}

    assert non_staff == {"alice", "bob", "carol", "dave", "user_a", "pat"}
    assert all(passwords[username].startswith("!") for username in non_staff)


def test_copy__keeps_staff_passwords(copied):
    passwords = copied.passwords(copied.target)

    assert passwords["admin"] == copied.source_passwords["admin"]
    assert passwords["sam"] == copied.source_passwords["sam"]
    assert not passwords["sam"].startswith("!")


def test_copy__deletes_the_sources_access_snapshots(copied):
    assert copied.query(copied.target, "SELECT count(*) FROM deploy_accesssnapshot") == [(0,)]


def test_copy__leaves_the_source_unchanged(copied):
    assert copied.query(copied.source, "SELECT count(*) FROM django_session") == [(3,)]
    assert copied.query(copied.source, "SELECT count(*) FROM deploy_accesssnapshot") == [(2,)]
    assert copied.passwords(copied.source) == copied.source_passwords


def test_copy__json_reports_rows_per_table_scrub_and_backup(copied):
    report = json.loads(copied.result.stdout)

    assert report["tables"]["accounts_user"] == 8
    assert report["tables"]["tools_toolaccess"] == 10
    assert report["tables"]["django_session"] == 3  # as copied, before the scrub
    assert report["scrubbed"] == {
        "sessions_deleted": 3,
        "passwords_made_unusable": 5,
        "passwords_kept": False,
        "access_snapshots_deleted": 2,
    }
    assert report["backup"]["label"] == "before-copy-database"
    assert report["migrations_applied"] == []


def test_copy__backs_up_the_target_before_copying(copied):
    report = json.loads(copied.result.stdout)

    assert Path(report["backup"]["path"]).parent == copied.backup_dir
    assert Path(report["backup"]["path"]).is_file()


def test_copy__never_prints_the_source_url_or_password(copied):
    output = copied.result.stdout + copied.result.stderr
    password = dj_database_url.parse(copied.source)["PASSWORD"]

    assert copied.source not in output
    assert not password or password not in output


def test_copy__text_output_lists_rows_per_table_and_what_was_scrubbed(server, tmp_path_factory):
    prepared = prepare(server, tmp_path_factory, "text")

    result = prepared.copy()

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"Copying (SQLite|PostgreSQL) \S+ into \1 \S+ \(local\): \d+ tables, \d+ rows\.", lines[0])
    assert lines[1].startswith("Backed up this database first: ") and "-local-before-copy-database" in lines[1]
    assert re.fullmatch(r"Copied \d+ tables:", lines[2])
    assert "  accounts_user                           8 rows" in lines
    assert "  tools_toolaccess                       10 rows" in lines
    assert (
        "Scrubbed: 3 sessions deleted, 5 non-staff passwords made unusable (staff keep theirs), "
        "2 access snapshots of the source deleted."
    ) in lines
    assert "Migrated: 0 migrations applied; catalogue synced." in lines
    assert lines[-1].startswith("Done: local now holds a copy of ")


def test_copy__with_keep_passwords_keeps_non_staff_passwords(server, tmp_path_factory):
    prepared = prepare(server, tmp_path_factory, "keep")
    source_passwords = prepared.passwords(prepared.source)

    result = prepared.copy("--keep-passwords")

    assert result.returncode == 0, result.stderr
    assert prepared.passwords(prepared.target) == source_passwords
    assert prepared.query(prepared.target, "SELECT count(*) FROM django_session") == [(0,)]
    assert (
        "Scrubbed: 3 sessions deleted, non-staff passwords kept (--keep-passwords), "
        "2 access snapshots of the source deleted."
    ) in result.stdout.splitlines()


def test_copy__leaves_a_backup_that_rollback_restores(server, tmp_path_factory):
    prepared = prepare(server, tmp_path_factory, "rollback")
    users = "SELECT username, email, password FROM accounts_user ORDER BY username"
    access_before = prepared.export_access(prepared.target)
    users_before = prepared.query(prepared.target, users)
    backup_id = json.loads(prepared.copy("--format", "json").stdout)["backup"]["id"]
    assert prepared.export_access(prepared.target) != access_before

    rolled_back = prepared.manage("rollback", backup_id, "--noinput")

    assert rolled_back.returncode == 0, rolled_back.stderr
    assert prepared.export_access(prepared.target) == access_before
    assert prepared.query(prepared.target, users) == users_before


def test_copy__migrates_the_copy_and_syncs_the_catalogue(server, tmp_path_factory):
    prepared = prepare(server, tmp_path_factory, "behind", source_script=SOURCE_BEHIND_THE_CODE)

    result = prepared.copy("--format", "json")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["migrations_applied"] == ["tools.0003_remove_legacy_reports"]
    assert prepared.query(
        prepared.target, "SELECT name FROM tools_tool WHERE key = 'team-directory'"
    ) == [("Team Directory",)]
    applied = "SELECT count(*) FROM django_migrations WHERE app = 'tools' AND name = '0003_remove_legacy_reports'"
    assert prepared.query(prepared.target, applied) == [(1,)]


def test_copy__dry_run_prints_the_sources_tables_and_writes_nothing(server, tmp_path_factory):
    prepared = prepare(server, tmp_path_factory, "dry")
    access_before = prepared.export_access(prepared.target)

    result = prepared.manage("copy_database", "--from", prepared.source, "--dry-run")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"Would copy (SQLite|PostgreSQL) \S+ into \1 \S+ \(local\): \d+ tables, \d+ rows\.", lines[0])
    assert "  django_session                          3 rows" in lines
    assert lines[-1] == "Dry run: nothing was written."
    assert prepared.export_access(prepared.target) == access_before
    assert prepared.query(prepared.target, "SELECT count(*) FROM django_session") == [(1,)]
    assert list(prepared.backup_dir.iterdir()) == []


def test_copy__unreachable_source_exits_1_leaves_the_target_unchanged_and_hides_the_password(
    server, tmp_path_factory
):
    prepared = prepare(server, tmp_path_factory, "unreachable")
    access_before = prepared.export_access(prepared.target)
    if server.engine == "postgresql":
        port = closed_port()
        unreachable = f"postgres://postgres:{SECRET}@127.0.0.1:{port}/omnitool_d_missing"
        where = f"PostgreSQL omnitool_d_missing@127.0.0.1:{port}"
    else:
        unreachable = server.url("missing")
        where = f"SQLite {dj_database_url.parse(unreachable)['NAME']}"

    result = prepared.manage("copy_database", "--from", unreachable, "--noinput")

    assert result.returncode == 1
    assert result.stderr.startswith(f"CommandError: copy_database refused: cannot reach the source {where}")
    assert result.stderr.rstrip().endswith("nothing was changed.")
    assert SECRET not in result.stdout + result.stderr
    assert prepared.export_access(prepared.target) == access_before
    assert prepared.query(prepared.target, "SELECT count(*) FROM django_session") == [(1,)]
    assert list(prepared.backup_dir.iterdir()) == []


def test_copy__same_database_is_refused(server, tmp_path_factory):
    prepared = prepare(server, tmp_path_factory, "same")

    result = prepared.manage("copy_database", "--from", prepared.target, "--noinput")

    assert result.returncode == 1
    assert "copy_database refused: the source is this same database" in result.stderr
    assert prepared.query(prepared.target, "SELECT count(*) FROM django_session") == [(1,)]


def test_copy__needs_confirmation_without_noinput(server, tmp_path_factory):
    prepared = prepare(server, tmp_path_factory, "confirm")

    result = prepared.manage("copy_database", "--from", prepared.source)

    assert result.returncode == 1
    assert "needs confirmation: run it in a terminal or pass --noinput" in result.stderr
    assert prepared.query(prepared.target, "SELECT count(*) FROM django_session") == [(1,)]


# Refusals against the test database -------------------------------------------------------------


def copy_database(*args: str):
    stdout, stderr = StringIO(), StringIO()
    call_command("copy_database", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue()


def row_counts() -> dict[str, int]:
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.models import Session

    return {
        "users": get_user_model().objects.count(),
        "grants": ToolAccess.objects.count(),
        "sessions": Session.objects.count(),
        "snapshots": AccessSnapshot.objects.count(),
    }


@pytest.fixture
def populated(db, demo_data):
    SessionStore().create()
    AccessSnapshot.objects.create(
        environment="production", reason="before import_access", document=b"", sha256="0" * 64
    )


def test_copy__production_target_is_refused_with_row_counts_unchanged(populated, settings, tmp_path):
    settings.OMNITOOL_ENV = "production"
    settings.BACKUP_DIR = tmp_path
    source = tmp_path / "source.sqlite3"
    source.write_bytes(b"")
    before = row_counts()

    with pytest.raises(CommandError) as refused:
        copy_database("--from", f"sqlite:///{source}", "--noinput", "--confirm", "production")

    assert str(refused.value) == (
        "copy_database refused: this is production, and copying replaces the whole database; run copy_database "
        "in staging or local to refresh them from production; nothing was changed."
    )
    assert row_counts() == before
    assert list(tmp_path.iterdir()) == [source]


def test_copy__other_engine_is_refused_naming_both(populated, tmp_path):
    if connection.vendor == "postgresql":
        source_url, source_name, target_name = f"sqlite:///{tmp_path}/source.sqlite3", "SQLite", "PostgreSQL"
    else:
        source_url, source_name, target_name = (
            f"postgres://postgres:{SECRET}@127.0.0.1:5432/omnitool_d_other",
            "PostgreSQL",
            "SQLite",
        )
    before = row_counts()

    with pytest.raises(CommandError) as refused:
        copy_database("--from", source_url, "--noinput")

    message = str(refused.value)
    assert message.startswith(f"copy_database refused: the source is a {source_name} database (")
    assert f"but this one is {target_name} (" in message
    assert message.endswith("copy_database copies between databases of the same engine only; nothing was changed.")
    assert SECRET not in message
    assert row_counts() == before


def test_copy__url_of_unknown_scheme_is_refused_without_quoting_it(populated):
    with pytest.raises(CommandError) as refused:
        copy_database("--from", f"mongodb://admin:{SECRET}@db.example.com/omnitool", "--noinput")

    assert str(refused.value) == (
        "copy_database refused: --from is not a database URL: scheme 'mongodb' is unknown; nothing was changed."
    )


def test_copy__empty_source_url_is_refused(populated):
    # What the refresh workflow passes when its secret is missing.
    with pytest.raises(CommandError) as refused:
        copy_database("--from", "", "--noinput")

    assert str(refused.value) == (
        "copy_database refused: --from is empty; pass the source environment's DATABASE_URL; nothing was changed."
    )


def test_copy__unreadable_source_url_is_refused_without_quoting_it(populated):
    with pytest.raises(CommandError) as refused:
        copy_database("--from", f"postgres://admin:{SECRET}@db.example.com:port/omnitool", "--noinput")

    assert SECRET not in str(refused.value)
    assert str(refused.value).startswith("copy_database refused: --from is not a database URL that can be read")


@pytest.mark.postgresql
def test_copy__same_postgresql_database_under_localhost_is_refused(populated):
    this = connection.settings_dict
    same = f"postgres://{this['USER']}@localhost:{this['PORT'] or 5432}/{this['NAME']}"
    before = row_counts()

    with pytest.raises(CommandError) as refused:
        copy_database("--from", same, "--noinput")

    assert "the source is this same database" in str(refused.value)
    assert row_counts() == before


@pytest.mark.postgresql
def test_copy__same_postgresql_database_under_a_host_name_is_refused_by_its_identity(populated):
    import socket

    host_name = socket.gethostname()
    try:
        if not socket.gethostbyname(host_name).startswith("127."):
            pytest.skip(f"{host_name} does not resolve to a loopback address here")
    except OSError:
        pytest.skip(f"{host_name} does not resolve here")
    this = connection.settings_dict
    same = f"postgres://{this['USER']}@{host_name}:{this['PORT'] or 5432}/{this['NAME']}"
    assert not same_database_settings(dj_database_url.parse(same), this)  # the addresses differ …

    with pytest.raises(CommandError) as refused:
        copy_database("--from", same, "--noinput")

    assert "is this same database" in str(refused.value) and "under another address" in str(refused.value)


def test_same_database_settings__resolves_sqlite_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    relative = dj_database_url.parse("sqlite:///db.sqlite3")
    absolute = dj_database_url.parse(f"sqlite:///{tmp_path}/sub/../db.sqlite3")

    assert same_database_settings(relative, absolute)


def test_copy_plan__repr_never_shows_the_source_password():
    plan = CopyPlan(
        engine="postgresql",
        source_description="PostgreSQL omnitool@db.example.com:5432",
        target_description="PostgreSQL omnitool_staging@127.0.0.1:5432",
        environment="staging",
        source_tables=(),
        source={"PASSWORD": SECRET},
        target={"PASSWORD": SECRET},
    )

    assert SECRET not in repr(plan)


def test_copy__dry_run_json_is_one_document_of_the_sources_tables(server, tmp_path_factory):
    prepared = prepare(server, tmp_path_factory, "dry_json")

    result = prepared.manage("copy_database", "--from", prepared.source, "--dry-run", "--format", "json")

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dry_run"] is True
    assert report["tables"]["django_session"] == 3
    assert report["tables"]["accounts_user"] == 8
    assert prepared.query(prepared.target, "SELECT count(*) FROM django_session") == [(1,)]


def test_copy__removes_tables_only_the_target_has(server, tmp_path_factory):
    # As a newer migration on staging leaves them; one that references a copied table would also block
    # pg_restore --clean from dropping that table.
    prepared = prepare(server, tmp_path_factory, "extra_table")
    manage_ok(
        "shell",
        "-c",
        "from django.db import connection\n"
        "with connection.cursor() as cursor:\n"
        "    cursor.execute('CREATE TABLE staging_only (id integer PRIMARY KEY, "
        "user_id bigint REFERENCES accounts_user (id))')\n",
        database_url=prepared.target,
        backup_dir=prepared.backup_dir,
    )

    result = prepared.copy("--format", "json")

    assert result.returncode == 0, result.stderr
    assert "staging_only" not in json.loads(result.stdout)["tables"]
    assert prepared.export_access(prepared.target) == prepared.export_access(prepared.source)
