"""Refresh this environment's database from another one's (production → staging).

`build_copy_plan(source_url)` decides whether the copy may happen and what it
would copy, writing nothing: it refuses in production, when the source is this
same database, when the engines differ, and when the source cannot be reached
or holds no Django database. `copy_database(plan)` then does the work:

1. a backup of this database (deploy.backups, with its retention), so that
   `rollback` can undo the refresh;
2. the copy: pg_dump (custom format) of the source staged in a temporary file
   and pg_restore'd into this database in one transaction, or SQLite's backup
   API from the source file into this one (deploy.databases does both);
3. the scrub, right after the copy: every session deleted, the passwords of
   non-staff users made unusable (unless kept on purpose), and the source's
   access snapshots deleted, since they describe the source, not this
   environment;
4. migrate, whose post_migrate handler syncs the catalogue, so that the copy
   fits this environment's code.

Source URLs carry passwords: nothing here puts one in a message, in argv or in
a repr (deploy.databases passes it to libpq through PGPASSWORD).
"""
import io
import ipaddress
import sqlite3
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dj_database_url
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX, make_password
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db.migrations.executor import MigrationExecutor

from deploy import databases
from deploy.backups import Backup, BackupError, create_backup
from deploy.databases import DatabaseToolError, Engine
from deploy.errors import first_line

BACKUP_LABEL = "before-copy-database"
SOURCE_CONNECT_TIMEOUT_SECONDS = 10
ENGINE_NAMES = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}
SESSION_TABLE = "django_session"
ACCESS_SNAPSHOT_TABLE = "deploy_accesssnapshot"


class CopyRefused(Exception):
    """The copy may not or cannot happen; nothing was changed. One line for people."""


class CopyFailed(Exception):
    """The copy started and failed; the message says what state the database is in and how to undo."""


@dataclass(frozen=True)
class TableRows:
    table: str
    rows: int


@dataclass(frozen=True)
class CopyPlan:
    """What a copy would do. Computing it reads the source and writes nothing."""

    engine: Engine
    source_description: str
    target_description: str
    environment: str
    source_tables: tuple[TableRows, ...]
    keep_passwords: bool = False
    # The DATABASES entries hold passwords: kept out of repr and of every message.
    source: Mapping[str, Any] = field(repr=False, default_factory=dict)
    target: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @property
    def source_row_count(self) -> int:
        return sum(table.rows for table in self.source_tables)


@dataclass(frozen=True)
class ScrubResult:
    sessions_deleted: int
    passwords_made_unusable: int
    access_snapshots_deleted: int
    passwords_kept: bool

    def summary(self) -> str:
        passwords = (
            "non-staff passwords kept (--keep-passwords)"
            if self.passwords_kept
            else f"{self.passwords_made_unusable} non-staff passwords made unusable (staff keep theirs)"
        )
        return (
            f"Scrubbed: {self.sessions_deleted} sessions deleted, {passwords}, "
            f"{self.access_snapshots_deleted} access snapshots of the source deleted."
        )


@dataclass(frozen=True)
class CopyResult:
    plan: CopyPlan
    backup: Backup
    copied_tables: tuple[TableRows, ...]
    scrub: ScrubResult
    migrations_applied: tuple[str, ...]


# Planning ---------------------------------------------------------------------------------------


def build_copy_plan(source_url: str, *, using: str = DEFAULT_DB_ALIAS, keep_passwords: bool = False) -> CopyPlan:
    """Check that this database may be replaced by the one at `source_url`; list the source's tables.

    Raises CopyRefused (nothing changed) for production, an unreadable URL,
    different engines, the same database on both sides, or an unreachable source.
    """
    environment = settings.OMNITOOL_ENV
    if environment == "production":
        raise CopyRefused(
            "this is production, and copying replaces the whole database; "
            "run copy_database in staging or local to refresh them from production"
        )
    source = parse_source_url(source_url)
    target = connections[using].settings_dict
    source_engine = _engine(source, "the source")
    target_engine = _engine(target, "this database")
    if source_engine != target_engine:
        raise CopyRefused(
            f"the source is a {ENGINE_NAMES[source_engine]} database ({databases.describe_database(source)}) "
            f"but this one is {ENGINE_NAMES[target_engine]} ({databases.describe_database(target)}); "
            "copy_database copies between databases of the same engine only"
        )
    if same_database_settings(source, target):
        raise CopyRefused(
            f"the source is this same database ({databases.describe_database(target)}); "
            "pass the other environment's DATABASE_URL"
        )
    if source_engine == "postgresql":
        source_tables = _postgresql_source_tables(source, target, using)
    else:
        source_tables = _sqlite_source_tables(source)
    if "django_migrations" not in {table.table for table in source_tables}:
        raise CopyRefused(
            f"the source {databases.describe_database(source)} holds no Django database "
            "(no django_migrations table); check --from"
        )
    return CopyPlan(
        engine=source_engine,
        source_description=databases.describe_database(source),
        target_description=databases.describe_database(target),
        environment=environment,
        source_tables=tuple(source_tables),
        keep_passwords=keep_passwords,
        source=source,
        target=target,
    )


def parse_source_url(source_url: str) -> dict[str, Any]:
    """The source's DATABASES entry; CopyRefused, never quoting the URL (it holds a password)."""
    if not source_url or not source_url.strip():
        raise CopyRefused("--from is empty; pass the source environment's DATABASE_URL")
    if "://" not in source_url:
        raise CopyRefused("--from is not a database URL: it has no scheme such as postgres:// or sqlite://")
    try:
        return dj_database_url.parse(source_url.strip())
    except dj_database_url.UnknownSchemeError:
        scheme = source_url.strip().split("://", 1)[0]
        raise CopyRefused(f"--from is not a database URL: scheme {scheme!r} is unknown") from None
    except (ValueError, KeyError):
        # The parser's message may quote the URL, password included.
        raise CopyRefused("--from is not a database URL that can be read: check its host, port and name") from None


def same_database_settings(source: Mapping[str, Any], target: Mapping[str, Any]) -> bool:
    """Whether two DATABASES entries name one database: same SQLite file, or same server and name."""
    if _engine(source, "the source") != _engine(target, "this database"):
        return False
    if _engine(source, "the source") == "sqlite":
        source_path, target_path = _sqlite_file(source, "the source"), _sqlite_file(target, "this database")
        return source_path.resolve() == target_path.resolve()
    return _postgresql_address(source) == _postgresql_address(target)


def _engine(settings_dict: Mapping[str, Any], which: str) -> Engine:
    try:
        return databases.engine_of(settings_dict)
    except DatabaseToolError as error:
        raise CopyRefused(f"{which}: {error}") from None


def _sqlite_file(settings_dict: Mapping[str, Any], which: str) -> Path:
    try:
        return databases.sqlite_path(settings_dict)
    except DatabaseToolError as error:
        raise CopyRefused(f"{which}: {error}") from None


def _postgresql_address(settings_dict: Mapping[str, Any]) -> tuple[str, str, str]:
    host = str(settings_dict.get("HOST") or "").strip().lower()
    # The loopback names and libpq's default (a local socket) reach one server.
    if not host or host.startswith("/") or host == "localhost" or _is_loopback(host):
        host = "local"
    port = str(settings_dict.get("PORT") or "5432")
    return host, port, str(settings_dict.get("NAME") or "")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _redact(text: str, settings_dict: Mapping[str, Any]) -> str:
    password = str(settings_dict.get("PASSWORD") or "")
    return text.replace(password, "***") if password else text


def _postgresql_source_tables(
    source: Mapping[str, Any], target: Mapping[str, Any], using: str
) -> list[TableRows]:
    import psycopg2
    from psycopg2 import sql

    try:
        connection = databases.pg_connect(source, connect_timeout=SOURCE_CONNECT_TIMEOUT_SECONDS)
    except DatabaseToolError as error:
        raise CopyRefused(str(error).replace("cannot connect to", "cannot reach the source", 1)) from None
    try:
        connection.set_session(readonly=True)
        with connection.cursor() as cursor:
            source_identity = _postgresql_identity(cursor)
            if source_identity is not None and source_identity == _target_postgresql_identity(using):
                raise CopyRefused(
                    f"the source {databases.describe_database(source)} is this same database "
                    f"({databases.describe_database(target)}) under another address; "
                    "pass the other environment's DATABASE_URL"
                )
            cursor.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name"
            )
            tables = [row[0] for row in cursor.fetchall()]
            counted = []
            for table in tables:
                cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
                counted.append(TableRows(table, cursor.fetchone()[0]))
            return counted
    except psycopg2.Error as error:
        reason = first_line(error)
        raise CopyRefused(
            f"cannot read the source {databases.describe_database(source)}: {_redact(reason, source)}"
        ) from None
    finally:
        connection.close()


# Which cluster and database a connection reaches, whatever address led there.
IDENTITY_QUERY = "SELECT (SELECT system_identifier FROM pg_control_system()), current_database()"


def _postgresql_identity(cursor) -> tuple | None:
    try:
        cursor.execute(IDENTITY_QUERY)
        return tuple(cursor.fetchone())
    except Exception:  # pg_control_system() may be out of reach for the role; the address check stands
        cursor.connection.rollback()
        return None


def _target_postgresql_identity(using: str) -> tuple | None:
    try:
        with transaction.atomic(using=using), connections[using].cursor() as cursor:
            cursor.execute(IDENTITY_QUERY)
            return tuple(cursor.fetchone())
    except DatabaseError:
        return None


def _sqlite_source_tables(source: Mapping[str, Any]) -> list[TableRows]:
    path = _sqlite_file(source, "the source")
    if not path.is_file():
        raise CopyRefused(f"cannot reach the source {databases.describe_database(source)}: no such file")
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = [
                row[0]
                for row in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            ]
            return [
                TableRows(table, connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
                for table in tables
            ]
        finally:
            connection.close()
    except sqlite3.Error as error:
        raise CopyRefused(f"cannot read the source {databases.describe_database(source)}: {error}") from None


# Copying ----------------------------------------------------------------------------------------


def copy_database(
    plan: CopyPlan,
    *,
    using: str = DEFAULT_DB_ALIAS,
    backup_keep: int | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> CopyResult:
    """Back up this database, replace it with the source's, scrub it, migrate it. See the module docstring."""
    connection = connections[using]
    if connection.in_atomic_block:
        raise CopyRefused("copy_database() cannot run inside a transaction")
    progress("Backing up this database…")
    try:
        backup = create_backup(label=BACKUP_LABEL, using=using, keep=backup_keep)
    except BackupError as error:
        raise CopyRefused(f"the backup before the copy failed, nothing was copied: {error}") from None
    progress(f"Copying {plan.source_description}…")
    undo = f"the backup {backup.id} holds this database as it was; `manage.py rollback {backup.id}` restores it"

    try:
        if plan.engine == "postgresql":
            _copy_postgresql(plan, using)
        else:
            _copy_sqlite(plan, using)
    except DatabaseToolError as error:
        raise CopyFailed(f"the copy failed: {_redact(str(error), plan.source)}; {undo}") from None
    finally:
        connection.close()
    _forget_cached_rows()

    try:
        copied_tables = count_table_rows(using)
        progress("Scrubbing sessions, passwords and the source's access snapshots…")
        scrub = scrub_copied_data(using=using, keep_passwords=plan.keep_passwords)
        progress("Migrating and syncing the catalogue…")
        migrations_applied = migrate_copied_database(using=using)
    except Exception as error:
        reason = first_line(error)
        raise CopyFailed(f"the copy landed but finishing it failed: {reason}; {undo}") from error
    return CopyResult(plan, backup, tuple(copied_tables), scrub, tuple(migrations_applied))


def _copy_postgresql(plan: CopyPlan, using: str) -> None:
    with tempfile.TemporaryDirectory(prefix="omnitool-copy-") as scratch:
        archive = Path(scratch) / "source.dump"
        databases.pg_dump(plan.source, archive)
        _drop_tables_the_source_lacks(plan, using)
        connections[using].close()
        databases.pg_restore(plan.target, archive)


def _drop_tables_the_source_lacks(plan: CopyPlan, using: str) -> None:
    """pg_restore --clean only replaces what the archive holds. A table only this database has
    (a newer migration's) would stay, block the drop of tables it references, and make migrate
    fail to create it again; the SQLite copy drops such tables too, as it replaces the whole file."""
    connection = connections[using]
    source_tables = {table.table for table in plan.source_tables}
    with transaction.atomic(using=using), connection.cursor() as cursor:
        extra = sorted(set(connection.introspection.table_names(cursor)) - source_tables)
        for table in extra:
            cursor.execute(f"DROP TABLE IF EXISTS {connection.ops.quote_name(table)} CASCADE")


def _copy_sqlite(plan: CopyPlan, using: str) -> None:
    # Django's connection must not hold the target open (or mid-transaction) while the backup API rewrites it.
    connections[using].close()
    databases.sqlite_copy(databases.sqlite_path(plan.source), databases.sqlite_path(plan.target))


def _forget_cached_rows() -> None:
    """Content types are cached by id; the copy brought the source's ids."""
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.clear_cache()


def count_table_rows(using: str = DEFAULT_DB_ALIAS) -> list[TableRows]:
    """Every table of this database with its row count, by name."""
    connection = connections[using]
    with connection.cursor() as cursor:
        tables = sorted(connection.introspection.table_names(cursor))
        counted = []
        for table in tables:
            cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(table)}")
            counted.append(TableRows(table, cursor.fetchone()[0]))
    return counted


def scrub_copied_data(*, using: str = DEFAULT_DB_ALIAS, keep_passwords: bool = False) -> ScrubResult:
    """Remove what must not leave the source, in one transaction.

    Runs before migrate, so that a migration that fails never leaves live
    sessions or passwords behind; it therefore touches only columns every
    schema version has (sessions, the user's password and is_staff, snapshots).
    """
    from django.contrib.sessions.models import Session

    from deploy.models import AccessSnapshot

    User = get_user_model()
    connection = connections[using]
    with transaction.atomic(using=using):
        with connection.cursor() as cursor:
            tables = set(connection.introspection.table_names(cursor))
        sessions_deleted = Session.objects.using(using).all().delete()[0] if SESSION_TABLE in tables else 0
        snapshots_deleted = (
            AccessSnapshot.objects.using(using).all().delete()[0] if ACCESS_SNAPSHOT_TABLE in tables else 0
        )
        passwords_made_unusable = 0
        if not keep_passwords:
            passwords_made_unusable = (
                User.objects.using(using)
                .filter(is_staff=False)
                .exclude(password__startswith=UNUSABLE_PASSWORD_PREFIX)
                .update(password=make_password(None))
            )
    return ScrubResult(sessions_deleted, passwords_made_unusable, snapshots_deleted, keep_passwords)


def migrate_copied_database(*, using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """Bring the copy up to this code's migrations (the catalogue sync runs on post_migrate);
    return the migrations applied."""
    connection = connections[using]
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    call_command("migrate", database=using, interactive=False, verbosity=0, stdout=io.StringIO())
    return [f"{migration.app_label}.{migration.name}" for migration, backwards in pending if not backwards]
