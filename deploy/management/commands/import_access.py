"""`manage.py import_access [SOURCE]`: make this environment's grants follow an access file.

Reads and validates the file, prints the plan, and (unless --dry-run) applies
it in one transaction under the grants lock, after storing an access snapshot.
The work is in deploy.access_file and deploy.access.
"""
import sys

from django.conf import settings
from django.core.management.base import CommandError

from deploy.access import (
    MERGE,
    MIRROR,
    MODES,
    AccessImportConflict,
    AccessPlan,
    ImportResult,
    apply_plan,
    build_plan,
)
from deploy.access_file import AccessFileError, read_access_file
from deploy.command import DeployCommand
from deploy.progress import progress_for

# Unmatched users and unknown tools listed at verbosity 1; all of them at 2.
LISTED_AT_VERBOSITY_1 = 20


class Command(DeployCommand):
    help = (
        "Import an access file: merge (default) adds the grants it lists; mirror also removes grants on its "
        "tools that it lacks. Users match on username and email. Prints the plan, then applies it in one "
        "transaction after storing an access snapshot. Exit 0 done, 1 error (nothing written), "
        "2 with --detailed-exitcode when the plan had changes."
    )
    confirmable = True

    def add_arguments(self, parser):
        parser.add_argument(
            "source",
            nargs="?",
            help="The access file to import; '-' reads stdin. Default: settings.ACCESS_FILE (fixtures/access.json).",
        )
        parser.add_argument(
            "--mode",
            choices=MODES,
            default=MERGE,
            help="merge (default): add missing grants, never delete. mirror: also delete grants of the "
            "file's tools that the file lacks (in production: needs --noinput --confirm production).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Print the plan and write nothing.")
        parser.add_argument(
            "--strict",
            action="store_true",
            help="Fail (exit 1, nothing written) when the file names users or tools this database cannot match.",
        )
        parser.add_argument(
            "--detailed-exitcode",
            action="store_true",
            help="Exit 2 instead of 0 when the plan had changes (also with --dry-run).",
        )

    def handle(self, *args, **options):
        source = options["source"] or str(settings.ACCESS_FILE)
        try:
            access_file = read_access_file(source)
        except AccessFileError as error:
            raise CommandError(f"{error} Nothing was written.") from None
        plan = build_plan(access_file, mode=options["mode"])
        self.print_plan(plan)

        if options["strict"] and plan.has_unmatched:
            self.finish(plan, options, status="refused")
            raise CommandError(
                f"--strict: the file names {_count(len(plan.unmatched_users), 'unmatched user')} and "
                f"{_count(len(plan.unknown_tools), 'unknown tool')}; nothing was written."
            )
        if options["dry_run"]:
            self.say("Dry run: nothing was written.")
            return self.finish(plan, options, status="dry-run")
        if not plan.has_changes:
            self.say("Nothing to change: the grants already match the file.", style=self.style.SUCCESS)
            return self.finish(plan, options, status="unchanged")
        if plan.mode == MIRROR and plan.to_remove_count and self.should_confirm(options):
            self.confirm_destructive(
                f"Mirror import removing {_count(plan.to_remove_count, 'grant')}", options
            )

        progress = progress_for(self, "Writing grants")
        try:
            result = apply_plan(plan, progress=progress)
        except AccessImportConflict as error:
            raise CommandError(f"Import of {plan.source} failed: {error}") from None
        finally:
            if progress:
                progress.finish()
        snapshot = f"; access snapshot #{result.snapshot.pk} stored first" if result.snapshot else ""
        self.say(
            f"Imported: {_count(result.added, 'grant')} added, {result.removed} removed{snapshot}.",
            style=self.style.SUCCESS,
        )
        return self.finish(plan, options, status="applied" if result.changed else "unchanged", result=result)

    def should_confirm(self, options) -> bool:
        """Production always confirms a mirror that deletes; elsewhere only a person at a terminal is asked."""
        if self.environment == "production":
            return True
        return options.get("interactive", True) and sys.stdin.isatty()

    def print_plan(self, plan: AccessPlan) -> None:
        if self.format == "json":
            return
        self.say(f"Access plan ({plan.mode}) from {plan.source}, exported from {plan.environment}:")
        for label, value in (
            ("grants to add", plan.to_add_count),
            ("grants to remove", plan.to_remove_count),
            ("unchanged", plan.unchanged_count),
            ("unmatched users", len(plan.unmatched_users)),
            ("unknown tools", len(plan.unknown_tools)),
        ):
            self.say(f"  {label:<17}{value:>10,}")
        for tool in plan.tools:
            self.say(
                f"  {tool.key}: +{len(tool.add_user_ids):,} -{len(tool.remove_user_ids):,} ={tool.unchanged:,}",
                level=2,
            )
            if self.verbosity >= 3:
                for username in tool.to_add:
                    self.say(f"    + {username}", level=3)
                for username in tool.to_remove:
                    self.say(f"    - {username}", level=3)
        self.print_skipped(
            [f"Unmatched user: {user.describe()}" for user in plan.unmatched_users]
            + [f"Unknown tool: {tool.describe()}" for tool in plan.unknown_tools]
        )

    def print_skipped(self, lines: list[str]) -> None:
        shown = lines if self.verbosity >= 2 else lines[:LISTED_AT_VERBOSITY_1]
        for line in shown:
            self.say(line, style=self.style.WARNING)
        if len(shown) < len(lines):
            self.say(f"... and {len(lines) - len(shown):,} more (-v 2 lists them all).", style=self.style.WARNING)

    def finish(self, plan: AccessPlan, options, status: str, result: ImportResult | None = None) -> None:
        if self.format == "json":
            self.write_json(
                {
                    "status": status,
                    "dry_run": options["dry_run"],
                    "strict": options["strict"],
                    "added": result.added if result else 0,
                    "removed": result.removed if result else 0,
                    "snapshot": result.snapshot.pk if result and result.snapshot else None,
                    "plan": (result.plan if result else plan).as_dict(),
                }
            )
        # After an apply, what counts is what was written: a concurrent import may have done it first.
        changed = result.changed if result else plan.has_changes
        if options["detailed_exitcode"] and changed and status != "refused":
            self.stdout.flush()
            sys.exit(2)


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"
