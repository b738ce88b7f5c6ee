"""`manage.py sync_tools`: make the database's tools equal the catalogue (migrate does this too)."""
from django.core.management.base import BaseCommand, CommandError
from django.template.defaultfilters import pluralize

from tools.sync import CatalogueConflict, apply_catalogue_diff, diff_catalogue


class Command(BaseCommand):
    help = (
        "Create missing catalogue tools and update changed names and descriptions. Never deletes. "
        "With --check, change nothing and exit 1 when the database and the catalogue differ."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Print what would change; write nothing.")
        parser.add_argument(
            "--check", action="store_true", help="Write nothing; exit 1 naming every difference (for CI)."
        )
        parser.add_argument("--database", default="default", help="Database alias (default: default).")

    def handle(self, *args, **options):
        using = options["database"]
        diff = diff_catalogue(using=using)
        verbosity = options["verbosity"]
        if options["check"]:
            if diff.in_sync:
                if verbosity >= 1:
                    self.stdout.write(self.style.SUCCESS("Catalogue and database agree."))
                return
            for line in diff.lines():
                self.stderr.write(line)
            count = len(diff.lines())
            raise CommandError(f"Catalogue and database differ ({count} difference{pluralize(count)}).")
        for line in diff.lines():
            if verbosity >= 1:
                self.stdout.write(("would " if options["dry_run"] else "") + line)
        if options["dry_run"] or not diff.needs_sync:
            if verbosity >= 1 and not diff.needs_sync:
                self.stdout.write("Nothing to sync.")
            return
        try:
            apply_catalogue_diff(diff, using=using)
        except CatalogueConflict as error:
            raise CommandError(str(error)) from None
        if verbosity >= 1:
            self.stdout.write(
                self.style.SUCCESS(f"Synced: {len(diff.to_create)} created, {len(diff.to_update)} updated.")
            )
