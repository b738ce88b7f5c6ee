"""`manage.py copy_database --from URL`: refresh this environment's database from another's.

The work is deploy.copying's: this command prints the plan, asks, and reports
what was backed up, copied (rows per table) and scrubbed.
"""
from django.core.management.base import CommandError

from deploy.command import DeployCommand
from deploy.copying import CopyFailed, CopyRefused, build_copy_plan, copy_database


class Command(DeployCommand):
    help = (
        "Replace this environment's database with a copy of another one's (e.g. production into staging): "
        "backs this database up first, copies (pg_dump/pg_restore or SQLite's backup API), deletes every "
        "session, makes non-staff passwords unusable, then runs migrate and the catalogue sync. "
        "Refused in production."
    )
    confirmable = True

    def add_arguments(self, parser):
        parser.add_argument(
            "--from",
            dest="source_url",
            required=True,
            metavar="URL",
            help="The source database's URL, as in its DATABASE_URL (postgres://… or sqlite:///…). Never printed.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Print the source's tables and row counts and write nothing.",
        )
        parser.add_argument(
            "--keep-passwords",
            action="store_true",
            help="Keep the non-staff users' passwords usable (by default only staff can sign in after a copy).",
        )

    def handle(self, *args, **options):
        try:
            plan = build_copy_plan(options["source_url"], keep_passwords=options["keep_passwords"])
        except CopyRefused as refusal:
            raise CommandError(f"copy_database refused: {refusal}; nothing was changed.") from None

        verb = "Would copy" if options["dry_run"] else "Copying"
        self.say(
            f"{verb} {plan.source_description} into {plan.target_description} ({plan.environment}): "
            f"{len(plan.source_tables)} tables, {plan.source_row_count} rows."
        )
        if options["dry_run"]:
            self._print_tables(plan.source_tables, level=1)
            self.say("Dry run: nothing was written.")
            if self.format == "json":
                self.write_json(
                    {
                        "dry_run": True,
                        "environment": plan.environment,
                        "source": plan.source_description,
                        "target": plan.target_description,
                        "tables": {table.table: table.rows for table in plan.source_tables},
                    }
                )
            return

        self.confirm_destructive(
            f"Replacing the whole database {plan.target_description} with a copy of {plan.source_description}",
            options,
        )
        try:
            result = copy_database(plan, progress=lambda message: self.say(message, level=2))
        except (CopyRefused, CopyFailed) as problem:
            raise CommandError(f"copy_database: {problem}.") from None

        self.say(f"Backed up this database first: {result.backup.id} ({result.backup.path}).")
        self.say(f"Copied {len(result.copied_tables)} tables:")
        self._print_tables(result.copied_tables, level=1)
        self.say(result.scrub.summary())
        migrations = len(result.migrations_applied)
        self.say(f"Migrated: {migrations} migration{'s' if migrations != 1 else ''} applied; catalogue synced.")
        for migration in result.migrations_applied:
            self.say(f"  applied {migration}", level=2)
        self.say(
            f"Done: {plan.environment} now holds a copy of {plan.source_description}; "
            f"undo with `manage.py rollback {result.backup.id}`.",
            style=self.style.SUCCESS,
        )
        if self.format == "json":
            self.write_json(
                {
                    "dry_run": False,
                    "environment": plan.environment,
                    "source": plan.source_description,
                    "target": plan.target_description,
                    "backup": result.backup.as_dict(),
                    "tables": {table.table: table.rows for table in result.copied_tables},
                    "scrubbed": {
                        "sessions_deleted": result.scrub.sessions_deleted,
                        "passwords_made_unusable": result.scrub.passwords_made_unusable,
                        "passwords_kept": result.scrub.passwords_kept,
                        "access_snapshots_deleted": result.scrub.access_snapshots_deleted,
                    },
                    "migrations_applied": list(result.migrations_applied),
                }
            )

    def _print_tables(self, tables, level: int) -> None:
        width = max((len(table.table) for table in tables), default=0)
        for table in tables:
            self.say(f"  {table.table:<{width}}  {table.rows:>9} rows", level=level)
