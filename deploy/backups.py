"""Full database backups in BACKUP_DIR: create, list, find, check and restore.

A backup is one file, `<UTC time>-<environment>[-<label>].dump` (pg_dump's
custom format) or `.sqlite3` (a copy made with SQLite's backup API), plus a
JSON manifest beside it (`<id>.json`) recording when, where and what: the
environment, engine, size and SHA-256. Both are written to a hidden temporary
file and renamed into place, so a failed or interrupted backup never leaves a
file that looks like a good one. The manifest's checksum also lets a restore
refuse a truncated or altered file before it touches the database.
"""
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils.text import slugify

from deploy import databases
from deploy.databases import DatabaseToolError, Engine, RestoredWithLeftoversError

MANIFEST_SCHEMA = "omnitool.backup/v1"
EXTENSIONS: dict[Engine, str] = {"postgresql": ".dump", "sqlite": ".sqlite3"}
ENGINE_BY_EXTENSION = {extension: engine for engine, extension in EXTENSIONS.items()}
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
NAME_PATTERN = re.compile(
    r"^(?P<stamp>\d{8}T\d{6}Z)-(?P<environment>[a-z]+)(?:-(?P<label>[a-z0-9][a-z0-9-]*))?$"
)
LABEL_MAX_LENGTH = 60


class BackupError(Exception):
    """A backup could not be made, found, trusted or restored; the message is one line."""


@dataclass(frozen=True)
class Backup:
    path: Path
    created_at: datetime  # UTC
    environment: str
    label: str
    size: int
    engine: Engine
    sha256: str = ""  # from the manifest; empty when the manifest is missing

    @property
    def id(self) -> str:
        """What `rollback ID` and `backup --list` use: the file name without its extension."""
        return self.path.stem

    @property
    def manifest_path(self) -> Path:
        return manifest_path_for(self.path)

    def age(self, now: datetime | None = None) -> str:
        """'3 h', '2 d': how long ago it was taken, for people."""
        seconds = max(0, int(((now or datetime.now(UTC)) - self.created_at).total_seconds()))
        for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
            if seconds >= length:
                return f"{seconds // length} {unit}"
        return f"{seconds} s"

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "path": str(self.path),
            "created_at": self.created_at.isoformat(),
            "environment": self.environment,
            "label": self.label,
            "size": self.size,
            "engine": self.engine,
            "sha256": self.sha256,
        }


def manifest_path_for(backup_path: Path) -> Path:
    return backup_path.with_suffix(".json")


def backup_directory() -> Path:
    return Path(settings.BACKUP_DIR)


def clean_label(label: str) -> str:
    """A label as it goes into a file name: lowercase letters, digits and hyphens."""
    cleaned = slugify(label).replace("_", "-").strip("-")[:LABEL_MAX_LENGTH].strip("-")
    if label.strip() and not cleaned:
        raise BackupError(f"label {label!r} has no letters or digits; use something like 'before-release'")
    return cleaned


# Creating ---------------------------------------------------------------------------------------


def create_backup(
    *,
    label: str = "",
    using: str = DEFAULT_DB_ALIAS,
    keep: int | None = None,
    protect: Iterable[Backup] = (),
) -> Backup:
    """Back up the whole database into BACKUP_DIR, then apply retention.

    Retention keeps the newest `keep` backups (default BACKUP_KEEP); it never
    deletes the backup just made nor those in `protect` (a rollback protects the
    one it is about to restore).
    """
    keep = settings.BACKUP_KEEP if keep is None else keep
    if keep < 1:
        raise BackupError(f"--keep must be at least 1 (got {keep}); retention never deletes the newest backup")
    label = clean_label(label)
    settings_dict = connections[using].settings_dict
    try:
        engine = databases.engine_of(settings_dict)
    except DatabaseToolError as error:
        raise BackupError(str(error)) from None
    directory = backup_directory()
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise BackupError(f"cannot create the backup directory {directory}: {error.strerror}") from None

    created_at = datetime.now(UTC)
    path = _free_path(directory, created_at, settings.OMNITOOL_ENV, label, engine)
    temporary = path.with_name(f".{path.name}.partial")
    try:
        if engine == "postgresql":
            databases.pg_dump(settings_dict, temporary)
        else:
            databases.sqlite_copy(databases.sqlite_path(settings_dict), temporary)
        temporary.chmod(0o600)  # a backup holds password hashes and sessions
        _fsync(temporary)
        sha256, size = _checksum(temporary)
        backup = Backup(path, created_at, settings.OMNITOOL_ENV, label, size, engine, sha256)
        os.replace(temporary, path)
        _write_atomically(backup.manifest_path, json.dumps(_manifest(backup, settings_dict), indent=2) + "\n")
        _fsync_directory(directory)
    except DatabaseToolError as error:
        raise BackupError(f"backup failed, nothing was kept: {error}") from None
    except OSError as error:
        raise BackupError(f"backup failed writing {path}: {error.strerror or error}; nothing was kept") from None
    finally:
        temporary.unlink(missing_ok=True)

    apply_retention(keep, directory=directory, protect=[backup, *protect])
    return backup


def apply_retention(keep: int, *, directory: Path | None = None, protect: Iterable[Backup] = ()) -> list[Backup]:
    """Delete all but the newest `keep` backups (never one in `protect`); return the deleted ones."""
    protected = {backup.path.resolve() for backup in protect}
    kept = 0
    deleted = []
    for backup in list_backups(directory):
        if backup.path.resolve() in protected or kept < keep:
            kept += 1
            continue
        backup.path.unlink(missing_ok=True)
        backup.manifest_path.unlink(missing_ok=True)
        deleted.append(backup)
    return deleted


def _free_path(directory: Path, created_at: datetime, environment: str, label: str, engine: Engine) -> Path:
    stem = f"{created_at:{STAMP_FORMAT}}-{environment}" + (f"-{label}" if label else "")
    path = directory / f"{stem}{EXTENSIONS[engine]}"
    counter = 2
    while path.exists() or manifest_path_for(path).exists():  # two backups in one second
        path = directory / f"{stem}-{counter}{EXTENSIONS[engine]}"
        counter += 1
    return path


def _manifest(backup: Backup, settings_dict) -> dict:
    return {
        "schema": MANIFEST_SCHEMA,
        "file": backup.path.name,
        "created_at": backup.created_at.isoformat(),
        "environment": backup.environment,
        "label": backup.label,
        "engine": backup.engine,
        "size": backup.size,
        "sha256": backup.sha256,
        "database": databases.describe_database(settings_dict),
        "release_version": settings.RELEASE_VERSION,
    }


def _checksum(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _write_atomically(path: Path, text: str) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    with path.open("rb") as file:
        os.fsync(file.fileno())


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# Listing and finding ----------------------------------------------------------------------------


def list_backups(directory: Path | None = None) -> list[Backup]:
    """The backups in `directory` (default BACKUP_DIR), newest first. Unrecognised files are ignored."""
    directory = backup_directory() if directory is None else Path(directory)
    if not directory.is_dir():
        return []
    backups = []
    for path in directory.iterdir():
        if path.name.startswith(".") or path.suffix not in ENGINE_BY_EXTENSION or not path.is_file():
            continue
        try:
            backups.append(read_backup(path))
        except BackupError:
            continue  # someone else's file that happens to end in .dump
    return sorted(backups, key=lambda backup: (backup.created_at, backup.path.name), reverse=True)


def read_backup(path: Path) -> Backup:
    """A Backup from its file: the manifest when there is one, else what the file name says."""
    engine = ENGINE_BY_EXTENSION.get(path.suffix)
    if engine is None:
        raise BackupError(f"{path.name} is not a backup: backups end in .dump (PostgreSQL) or .sqlite3 (SQLite)")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise BackupError(f"backup file {path} does not exist") from None
    manifest_path = manifest_path_for(path)
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            return Backup(
                path=path,
                created_at=datetime.fromisoformat(manifest["created_at"]).astimezone(UTC),
                environment=str(manifest["environment"]),
                label=str(manifest.get("label", "")),
                size=size,
                engine=manifest.get("engine", engine),
                sha256=str(manifest.get("sha256", "")),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            raise BackupError(f"the manifest {manifest_path} is unreadable; the backup cannot be trusted") from None
    match = NAME_PATTERN.match(path.stem)
    if match is None:
        raise BackupError(
            f"{path.name} has no manifest and its name does not say when and where it was taken "
            "(<YYYYMMDDTHHMMSSZ>-<environment>[-<label>])"
        )
    return Backup(
        path=path,
        created_at=datetime.strptime(match["stamp"], STAMP_FORMAT).replace(tzinfo=UTC),
        environment=match["environment"],
        label=match["label"] or "",
        size=size,
        engine=engine,
    )


def find_backup(
    name_or_path: str | None = None,
    directory: Path | None = None,
    *,
    environment: str | None = None,
    engine: Engine | None = None,
) -> Backup:
    """The one named by id, file name or path, or (None) the newest backup,
    of `environment` and `engine` when given; BackupError when missing."""
    directory = backup_directory() if directory is None else Path(directory)
    if name_or_path is None:
        backups = list_backups(directory)
        if not backups:
            raise BackupError(f"there are no backups in {directory}; take one with `manage.py backup`")
        fitting = [
            backup
            for backup in backups
            if environment in (None, backup.environment) and engine in (None, backup.engine)
        ]
        if not fitting:
            wanted = f"{engine} backup" if engine else "backup"
            raise BackupError(
                f"none of the {len(backups)} backups in {directory} is a {wanted} of "
                f"{environment or 'any environment'}; take one with `manage.py backup`"
            )
        return fitting[0]
    candidate = Path(name_or_path)
    if candidate.suffix in ENGINE_BY_EXTENSION and candidate.is_file():
        return read_backup(candidate)
    for backup in list_backups(directory):
        if name_or_path in (backup.id, backup.path.name):
            return backup
    raise BackupError(f"no backup {name_or_path!r} in {directory}; `manage.py backup --list` shows them")


# Checking and restoring -------------------------------------------------------------------------


def check_backup(backup: Backup, *, using: str = DEFAULT_DB_ALIAS) -> None:
    """Refuse a backup that cannot be restored here, before anything is touched.

    It must come from this environment, match this database's engine, still
    have its manifest's size and checksum, and read back whole: `pg_restore
    --list` for PostgreSQL, `PRAGMA integrity_check` on a scratch copy for SQLite.
    """
    if backup.environment != settings.OMNITOOL_ENV:
        raise BackupError(
            f"backup {backup.id} was taken in {backup.environment}, not {settings.OMNITOOL_ENV}; "
            "restore only this environment's backups (copy_database refreshes from another one)"
        )
    settings_dict = connections[using].settings_dict
    try:
        engine = databases.engine_of(settings_dict)
    except DatabaseToolError as error:
        raise BackupError(str(error)) from None
    if backup.engine != engine:
        raise BackupError(f"backup {backup.id} is a {backup.engine} backup but this database is {engine}")
    if not backup.path.is_file():
        raise BackupError(f"backup file {backup.path} does not exist")
    if backup.sha256:
        sha256, size = _checksum(backup.path)
        if sha256 != backup.sha256:
            raise BackupError(
                f"backup {backup.id} is damaged: its {size} bytes no longer match the checksum in "
                f"{backup.manifest_path.name} (truncated or altered)"
            )
    try:
        if engine == "postgresql":
            databases.pg_check_archive(backup.path)
        else:
            with tempfile.TemporaryDirectory(prefix="omnitool-check-") as scratch:
                _checked_sqlite_copy(backup, Path(scratch) / "check.sqlite3")
    except DatabaseToolError as error:
        raise BackupError(f"backup {backup.id} is damaged: {error}") from None


def restore_backup(backup: Backup, *, using: str = DEFAULT_DB_ALIAS) -> None:
    """Replace the whole database with `backup`. Checks it first; a failure leaves the database as it was.

    PostgreSQL: pg_restore --clean --if-exists --single-transaction. SQLite: the
    backup is copied to a scratch file beside the database and checked, then
    copied over the live file through the backup API in one transaction (other
    processes' open connections then see the restored data, which a rename of
    the file would hide from them). Django's connection is closed around it.
    """
    check_backup(backup, using=using)
    connection = connections[using]
    if connection.in_atomic_block:
        raise BackupError("restore_backup() cannot run inside a transaction")
    settings_dict = connection.settings_dict
    connection.close()
    try:
        if backup.engine == "postgresql":
            databases.pg_restore(settings_dict, backup.path)
        else:
            live = databases.sqlite_path(settings_dict)
            with tempfile.TemporaryDirectory(prefix=".omnitool-restore-", dir=live.parent) as scratch:
                checked = _checked_sqlite_copy(backup, Path(scratch) / live.name)
                databases.sqlite_copy(checked, live)
    except RestoredWithLeftoversError as error:
        raise BackupError(f"restoring {backup.id}: {error}") from None
    except DatabaseToolError as error:
        raise BackupError(f"restoring {backup.id} failed, the database was not changed: {error}") from None
    finally:
        connection.close()


def _checked_sqlite_copy(backup: Backup, target: Path) -> Path:
    databases.sqlite_copy(backup.path, target)
    problems = databases.sqlite_integrity_errors(target)
    if problems:
        raise DatabaseToolError(f"SQLite integrity check: {problems[0]}")
    if "django_migrations" not in databases.sqlite_table_names(target):
        raise DatabaseToolError("it holds no Django database (no django_migrations table)")
    return target
