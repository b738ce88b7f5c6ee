"""Rollbacks: the whole database from a backup, or only the grants from an access snapshot.

Both are planned first (`plan_rollback`, `find_access_snapshot`) with no side
effects, so a dry run is "plan, print, stop" and every refusal (a missing,
damaged or foreign backup) comes before anything is written.

A full rollback takes a safety backup ("before-rollback") and an access
snapshot of the current grants first. The restore replaces the snapshot table
too, so the fresh snapshot is written back into the restored database: after
a rollback, `rollback --access-only ID` can still bring back the grants as they
were just before it.
"""
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

from deploy import databases
from deploy.access import MIRROR, AccessPlan, build_plan
from deploy.access_file import AccessFileError
from deploy.backups import Backup, BackupError, check_backup, create_backup, find_backup, restore_backup
from deploy.models import AccessSnapshot
from deploy.snapshots import restore_access_snapshot, snapshot_access_file, take_access_snapshot

SAFETY_BACKUP_LABEL = "before-rollback"
SNAPSHOT_REASON = "before rollback"


class RollbackError(Exception):
    """A rollback that cannot run; one line, and nothing was changed."""


@dataclass(frozen=True)
class RollbackPlan:
    """What a full rollback would do: restore `backup` into `database`."""

    backup: Backup
    database: str  # for people, without the password
    environment: str

    def describe(self, now: datetime | None = None) -> str:
        backup = self.backup
        label = f", label {backup.label!r}" if backup.label else ""
        return (
            f"backup {backup.id}, taken {backup.created_at:%Y-%m-%d %H:%M:%S} UTC ({backup.age(now)} ago) "
            f"in {backup.environment}{label}, into {self.database}"
        )


@dataclass
class RollbackResult:
    plan: RollbackPlan
    safety_backup: Backup
    access_snapshot_id: int | None  # the pre-rollback snapshot, as written back into the restored database
    unapplied_migrations: list[str] = field(default_factory=list)


def plan_rollback(name_or_path: str | None = None, *, using: str = DEFAULT_DB_ALIAS) -> RollbackPlan:
    """Find the backup (newest when None) and make sure it can be restored here. Writes nothing."""
    try:
        backup = find_backup(
            name_or_path,
            environment=settings.OMNITOOL_ENV,
            engine=databases.engine_of(connections[using].settings_dict),
        )
        check_backup(backup, using=using)
    except BackupError as error:
        raise RollbackError(f"{error}; nothing was changed") from None
    settings_dict = connections[using].settings_dict
    return RollbackPlan(backup, databases.describe_database(settings_dict), settings.OMNITOOL_ENV)


def run_rollback(plan: RollbackPlan, *, using: str = DEFAULT_DB_ALIAS) -> RollbackResult:
    """Safety backup, access snapshot, then restore `plan.backup` over the whole database."""
    try:
        safety = create_backup(label=SAFETY_BACKUP_LABEL, using=using, protect=[plan.backup])
    except BackupError as error:
        raise RollbackError(f"the safety backup failed, so nothing was restored: {error}") from None
    snapshot_fields = _snapshot_current_access(using)
    try:
        restore_backup(plan.backup, using=using)
    except BackupError as error:
        raise RollbackError(f"{error} (safety backup {safety.id})") from None
    snapshot_id = _write_snapshot_back(snapshot_fields, using) if snapshot_fields else None
    return RollbackResult(plan, safety, snapshot_id, unapplied_migrations(using))


def _snapshot_current_access(using: str) -> dict | None:
    """The fields of a fresh access snapshot of the current grants, or None when there is no grant table yet."""
    tables = set(connections[using].introspection.table_names())
    if not {AccessSnapshot._meta.db_table, "tools_toolaccess", "tools_tool"} <= tables:
        return None
    snapshot = take_access_snapshot(SNAPSHOT_REASON, using=using)
    return {
        field_name: getattr(snapshot, field_name)
        for field_name in ("created_at", "environment", "reason", "tool_count", "grant_count", "document", "sha256")
    }


def _write_snapshot_back(snapshot_fields: dict, using: str) -> int | None:
    if AccessSnapshot._meta.db_table not in connections[using].introspection.table_names():
        return None  # the backup predates access snapshots; the safety backup still holds them
    return AccessSnapshot.objects.using(using).create(**snapshot_fields).pk


def unapplied_migrations(using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """Migrations the code has and the database lacks (a backup older than the code)."""
    executor = MigrationExecutor(connections[using])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, backwards in plan if not backwards]


# Access-only ------------------------------------------------------------------------------------


def find_access_snapshot(snapshot_id: int | None = None, *, using: str = DEFAULT_DB_ALIAS) -> AccessSnapshot:
    """The newest access snapshot (None) or the one with this id, from this environment. Writes nothing."""
    snapshots = AccessSnapshot.objects.using(using)
    if snapshot_id is None:
        snapshot = snapshots.order_by("-created_at", "-pk").first()
        if snapshot is None:
            raise RollbackError(
                "there are no access snapshots yet (import_access takes one before it writes); nothing was changed"
            )
    else:
        snapshot = snapshots.filter(pk=snapshot_id).first()
        if snapshot is None:
            raise RollbackError(
                f"no access snapshot #{snapshot_id}; `rollback --access-only --dry-run` names the newest, "
                "the admin lists them all; nothing was changed"
            )
    if snapshot.environment != settings.OMNITOOL_ENV:
        raise RollbackError(
            f"access snapshot #{snapshot.pk} was taken in {snapshot.environment}, not {settings.OMNITOOL_ENV} "
            "(copied with its database?); nothing was changed"
        )
    return snapshot


def plan_access_rollback(snapshot: AccessSnapshot, *, using: str = DEFAULT_DB_ALIAS) -> AccessPlan:
    """What restoring `snapshot` would change: a mirror plan over every tool. Writes nothing."""
    try:
        access_file = snapshot_access_file(snapshot)
    except AccessFileError as error:
        raise RollbackError(f"{error} Nothing was changed.") from None
    return build_plan(access_file, mode=MIRROR, using=using, all_tools=True)


def run_access_rollback(snapshot: AccessSnapshot, *, using: str = DEFAULT_DB_ALIAS) -> AccessPlan:
    """Make the grants exactly the snapshot's (one transaction, a fresh snapshot stored first); the plan applied."""
    try:
        return restore_access_snapshot(snapshot, using=using)
    except AccessFileError as error:
        raise RollbackError(f"{error} Nothing was changed.") from None


def describe_access_snapshot(snapshot: AccessSnapshot) -> str:
    return (
        f"access snapshot #{snapshot.pk}, taken {snapshot.created_at:%Y-%m-%d %H:%M:%S} UTC ({snapshot.reason}): "
        f"{snapshot.grant_count} grants on {snapshot.tool_count} tools"
    )
