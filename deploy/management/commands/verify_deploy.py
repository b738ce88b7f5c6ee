"""`manage.py verify_deploy`: the post-deploy checklist (deploy/verify.py)."""
from django.conf import settings

from deploy.checks import run_checks
from deploy.reporting import CheckCommand
from deploy.verify import verify_checks


class Command(CheckCommand):
    help = (
        "Check that this deployment is sound: database reachable, migrations applied, catalogue equal to the "
        "database, grants only on known tools, grants equal to the access file, an active superuser, the static "
        "manifest, and Django's deploy checks. Prints a checklist (-v 2: specifics); exit 1 if any check fails."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--source",
            metavar="PATH",
            help="The access file to compare the grants with (default: settings.ACCESS_FILE).",
        )
        parser.add_argument(
            "--strict",
            action="store_true",
            help="Grants the file lacks, and users or tools of the file this database lacks, fail instead of warn.",
        )
        parser.add_argument("--database", default="default", help="The database alias to check (default: default).")

    def handle(self, *args, **options):
        checks = verify_checks(options["source"] or settings.ACCESS_FILE, options["strict"], options["database"])
        if options["list"]:
            self.list_checks(checks)
            return
        report = run_checks(self.selected_checks(checks, options))
        self.report(report, f"verify_deploy ({self.environment})", environment=self.environment)
