"""`manage.py backup`: a full database backup into BACKUP_DIR, or `--list` the ones there."""
from datetime import UTC, datetime

from django.core.management.base import CommandError

from deploy.backups import BackupError, backup_directory, create_backup, list_backups
from deploy.command import DeployCommand


def human_size(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


class Command(DeployCommand):
    help = (
        "Back up the whole database into BACKUP_DIR (pg_dump custom format for PostgreSQL, the backup API "
        "for SQLite), then keep only the newest BACKUP_KEEP backups. With --list, show the backups instead."
    )

    def add_arguments(self, parser):
        parser.add_argument("--label", default="", help="A word or two for the file name, e.g. before-release.")
        parser.add_argument(
            "--keep",
            type=int,
            metavar="N",
            help="Keep the newest N backups (default BACKUP_KEEP); the one just made is always kept.",
        )
        parser.add_argument(
            "--list", action="store_true", help="List the backups (id, size, age, label), newest first; take none."
        )
        parser.add_argument("--database", default="default", help="Database alias (default: default).")

    def handle(self, *args, **options):
        if options["list"]:
            return self.list_backups()
        try:
            before = {backup.path for backup in list_backups()}
            backup = create_backup(label=options["label"], using=options["database"], keep=options["keep"])
            deleted = sorted(before - {existing.path for existing in list_backups()})
        except BackupError as error:
            raise CommandError(str(error)) from None
        if self.format == "json":
            self.write_json({"backup": backup.as_dict(), "deleted": [path.stem for path in deleted]})
            return
        self.say(f"Backup {backup.id} ({human_size(backup.size)}) written to {backup.path}", style=self.style.SUCCESS)
        for path in deleted:
            self.say(f"  retention deleted {path.stem}", level=2)
        if deleted:
            self.say(f"Retention deleted {len(deleted)} older backup(s).")

    def list_backups(self) -> None:
        backups = list_backups()
        now = datetime.now(UTC)
        if self.format == "json":
            self.write_json({"directory": str(backup_directory()), "backups": [backup.as_dict() for backup in backups]})
            return
        if not backups:
            self.say(f"No backups in {backup_directory()}.")
            return
        width = max(len(backup.id) for backup in backups)
        self.say(f"{'ID':<{width}}  {'SIZE':>10}  {'AGE':>7}  LABEL")
        for backup in backups:
            self.say(f"{backup.id:<{width}}  {human_size(backup.size):>10}  {backup.age(now):>7}  {backup.label}")
        self.say(f"{len(backups)} backup(s) in {backup_directory()}.", level=2)
