"""`manage.py smoke --url URL`: HTTP checks against a running deployment (deploy/smoke.py)."""
import os

from django.core.management.base import CommandError

from deploy.checks import run_checks
from deploy.reporting import CheckCommand
from deploy.smoke import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    SIGNED_IN_CHECKS,
    SmokeContext,
    SmokeError,
    smoke_checks,
    smoke_context,
)


class Command(CheckCommand):
    help = (
        "Smoke-test a running deployment over HTTP: /healthz/, the login redirect, the login and admin login "
        "pages, a long-cached static file, tool pages refusing anonymous users; with SMOKE_USERNAME and "
        "SMOKE_PASSWORD set, signs in and checks that the portal lists exactly that user's tools. Requests go "
        "to URL's origin only. Exit 1 if any check fails."
    )

    def add_arguments(self, parser):
        parser.add_argument("--url", help="The deployment's root URL, e.g. https://omnitool.example.com (required).")
        parser.add_argument(
            "--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
            help=f"Seconds to wait for one answer (default {DEFAULT_TIMEOUT:g}).",
        )
        parser.add_argument(
            "--retries", type=int, default=DEFAULT_RETRIES, metavar="N",
            help=f"Extra attempts while the app boots: connection refused or 502/503/504, with pauses of "
            f"1, 2, 4, 8, 10 ... s (default {DEFAULT_RETRIES}).",
        )
        parser.add_argument(
            "--expect-version", metavar="V", help="Fail unless /healthz/ reports this release version."
        )

    def handle(self, *args, **options):
        if options["list"]:
            self.list_checks(smoke_checks(SmokeContext(url=""), signed_in=True))
            return
        if not options["url"]:
            raise CommandError("--url is required: the deployment's root URL, e.g. https://omnitool.example.com.")
        if options["timeout"] <= 0 or options["retries"] < 0:
            raise CommandError("--timeout must be above 0 and --retries 0 or more.")
        try:
            context = smoke_context(
                options["url"],
                timeout=options["timeout"],
                retries=options["retries"],
                expect_version=options["expect_version"],
                username=os.environ.get("SMOKE_USERNAME"),
                password=os.environ.get("SMOKE_PASSWORD"),
            )
        except SmokeError as error:
            raise CommandError(str(error)) from None
        needs_credentials = sorted(set(options.get("check_names") or []) & {check.name for check in SIGNED_IN_CHECKS})
        if needs_credentials and not context.has_credentials:
            raise CommandError(f"--check {needs_credentials[0]} needs SMOKE_USERNAME and SMOKE_PASSWORD set.")
        selected = self.selected_checks(smoke_checks(context), options)
        if not context.has_credentials and not options.get("check_names"):
            self.say("Signed-in checks skipped: set SMOKE_USERNAME and SMOKE_PASSWORD to run them.")
        report = run_checks(selected)
        self.report(report, f"smoke ({context.url})", url=context.url)
