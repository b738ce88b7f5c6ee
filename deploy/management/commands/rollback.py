"""`manage.py rollback`: restore the newest (or a named) backup, or with --access-only only the grants."""
from django.core.management.base import CommandError

from deploy.command import DeployCommand
from deploy.rollback import (
    SAFETY_BACKUP_LABEL,
    RollbackError,
    describe_access_snapshot,
    find_access_snapshot,
    plan_access_rollback,
    plan_rollback,
    run_access_rollback,
    run_rollback,
)

NEWEST = "newest"


class Command(DeployCommand):
    help = (
        "Restore the whole database from the newest backup in BACKUP_DIR (or BACKUP, an id from `backup --list` "
        "or a path), after taking a safety backup. With --access-only [SNAPSHOT], make only the grants equal to "
        "an access snapshot (the newest by default). Production needs the environment's name typed, or "
        "--noinput --confirm production."
    )
    confirmable = True

    def add_arguments(self, parser):
        parser.add_argument("backup", nargs="?", metavar="BACKUP", help="Backup id or path (default: the newest).")
        parser.add_argument(
            "--access-only",
            nargs="?",
            const=NEWEST,
            metavar="SNAPSHOT",
            help="Restore only the grants, from this access snapshot id (default: the newest snapshot).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Say what would be restored and from when; change nothing."
        )
        parser.add_argument("--database", default="default", help="Database alias (default: default).")

    def handle(self, *args, **options):
        using = options["database"]
        try:
            if options["access_only"] is not None:
                if options["backup"]:
                    raise CommandError(
                        "pass either a BACKUP or --access-only [SNAPSHOT], not both; nothing was changed"
                    )
                return self.roll_back_access(options, using)
            return self.roll_back_database(options, using)
        except RollbackError as error:
            raise CommandError(str(error)) from None

    def roll_back_database(self, options, using):
        plan = plan_rollback(options["backup"], using=using)
        if options["dry_run"]:
            if self.format == "json":
                self.write_json({"dry_run": True, "restore": plan.backup.as_dict(), "database": plan.database})
            else:
                self.say(f"Would restore {plan.describe()}.")
                self.say(f"A safety backup ({SAFETY_BACKUP_LABEL}) would be taken first. Nothing was changed.")
            return
        self.confirm_destructive(f"Replacing the whole {plan.database} database with backup {plan.backup.id}", options)
        self.say(f"Restoring {plan.describe()}.")
        result = run_rollback(plan, using=using)
        if self.format == "json":
            self.write_json(
                {
                    "dry_run": False,
                    "restored": plan.backup.as_dict(),
                    "database": plan.database,
                    "safety_backup": result.safety_backup.as_dict(),
                    "access_snapshot": result.access_snapshot_id,
                    "unapplied_migrations": result.unapplied_migrations,
                }
            )
            return
        self.say(f"Safety backup: {result.safety_backup.id}.", level=2)
        self.say(f"Restored backup {plan.backup.id}.", style=self.style.SUCCESS)
        self.say(f"Undo with: manage.py rollback {result.safety_backup.id}")
        if result.access_snapshot_id is not None:
            self.say(
                f"The grants from just before the rollback are access snapshot #{result.access_snapshot_id} "
                f"(manage.py rollback --access-only {result.access_snapshot_id})."
            )
        if result.unapplied_migrations:
            self.stderr.write(
                self.style.WARNING(
                    f"The restored database lacks {len(result.unapplied_migrations)} migration(s) this code has "
                    f"({', '.join(result.unapplied_migrations[:3])}…): roll the code back too, or run migrate."
                )
            )

    def roll_back_access(self, options, using):
        snapshot_id = _snapshot_id(options["access_only"])
        snapshot = find_access_snapshot(snapshot_id, using=using)
        plan = plan_access_rollback(snapshot, using=using)
        if self.format != "json":
            verb = "Would restore" if options["dry_run"] else "Restoring"
            self.say(f"{verb} the grants of {describe_access_snapshot(snapshot)}.")
            self.print_plan(plan)
        if options["dry_run"] or not plan.has_changes:
            if self.format == "json":
                self.write_json(self.access_document(snapshot, plan, applied=False, dry_run=options["dry_run"]))
            elif options["dry_run"]:
                self.say("Dry run: nothing was changed.")
            else:
                self.say("Nothing to change: the grants already equal the snapshot.", style=self.style.SUCCESS)
            return
        self.confirm_destructive(
            f"Replacing every grant with those of access snapshot #{snapshot.pk} "
            f"({plan.to_add_count} to add, {plan.to_remove_count} to remove)",
            options,
        )
        applied = run_access_rollback(snapshot, using=using)
        if self.format == "json":
            self.write_json(self.access_document(snapshot, applied, applied=True, dry_run=False))
            return
        self.say(
            f"Grants restored from access snapshot #{snapshot.pk}: {applied.to_add_count} added, "
            f"{applied.to_remove_count} removed. The grants from before are the newest access snapshot "
            "(manage.py rollback --access-only undoes this).",
            style=self.style.SUCCESS,
        )
        for user in applied.unmatched_users:
            self.stderr.write(self.style.WARNING(f"Not restored, no such user now: {user.describe()}"))

    def print_plan(self, plan) -> None:
        self.say(
            f"  grants to add {plan.to_add_count}, to remove {plan.to_remove_count}, unchanged {plan.unchanged_count}"
        )
        for tool in plan.tools:
            changes = [f"add {', '.join(tool.to_add)}"] if tool.to_add else []
            changes += [f"remove {', '.join(tool.to_remove)}"] if tool.to_remove else []
            if changes:
                self.say(f"  {tool.key}: {'; '.join(changes)}", level=2)
        for user in plan.unmatched_users:
            self.say(f"  cannot restore, no such user now: {user.describe()}", style=self.style.WARNING)

    def access_document(self, snapshot, plan, *, applied: bool, dry_run: bool) -> dict:
        return {
            "dry_run": dry_run,
            "applied": applied,
            "snapshot": {
                "id": snapshot.pk,
                "created_at": snapshot.created_at.isoformat(),
                "reason": snapshot.reason,
                "grants": snapshot.grant_count,
            },
            "plan": plan.as_dict(),
        }


def _snapshot_id(value: str) -> int | None:
    if value == NEWEST:
        return None
    try:
        return int(value.lstrip("#"))
    except ValueError:
        raise CommandError(
            f"--access-only takes an access snapshot id (a number), not {value!r}; nothing was changed"
        ) from None
