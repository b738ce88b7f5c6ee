"""`manage.py release`: what the release phase runs (Procfile `release:`), stopping at the first failure."""
from django.conf import settings
from django.core.management.base import CommandError

from deploy.command import DeployCommand
from deploy.release import ReleaseStep, StepResult, release_steps, run_release


class Command(DeployCommand):
    help = (
        "The release phase: validate the access file, [back up,] migrate, sync the tool catalogue, import the "
        "access file (merge) and verify the deploy. Stops at the first failure with exit 1, so a failed Heroku "
        "release keeps the previous one live. An invalid access file stops it before anything is written."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--backup",
            action="store_true",
            default=None,
            help="Take a full backup (label before-release) before migrating. Default: BACKUP_ON_RELEASE.",
        )
        parser.add_argument(
            "--source", metavar="PATH", help="The access file to import and verify against (default: ACCESS_FILE)."
        )
        parser.add_argument("--database", default="default", help="Database alias (default: default).")

    def handle(self, *args, **options):
        backup = settings.BACKUP_ON_RELEASE if options["backup"] is None else options["backup"]
        steps = release_steps(backup=backup)
        total = len(steps)
        position = {step.name: index for index, step in enumerate(steps, start=1)}

        def announce(step: ReleaseStep) -> None:
            self.say(self.style.MIGRATE_HEADING(f"[{position[step.name]}/{total}] {step.name}"))

        def conclude(result: StepResult) -> None:
            if result.status == "ok":
                self.say(f"  ok ({result.seconds:.1f} s): {result.detail}", style=self.style.SUCCESS)
            else:
                self.say(f"  FAILED: {result.detail}", style=self.style.ERROR)

        json_mode = self.format == "json"
        report = run_release(
            steps,
            access_file=options["source"],
            using=options["database"],
            verbosity=self.verbosity if not json_mode else 1,
            # Nested commands stream to the terminal; in JSON mode they are captured into the document.
            output=None if json_mode else _CommandOutput(self.stdout, silent=self.verbosity < 1),
            on_step_start=announce,
            on_step_end=conclude,
        )
        if json_mode:
            self.write_json(
                {
                    "environment": self.environment,
                    "ok": report.ok,
                    "steps": [result.as_dict() for result in report.results],
                }
            )
        failed = report.failed_step
        if failed is not None:
            not_run = [result.name for result in report.results if result.status == "not run"]
            after = f"; not run: {', '.join(not_run)}" if not_run else ""
            raise CommandError(f"release stopped at {failed.name}: {failed.detail.rstrip('.')}{after}.")
        self.say(f"Release complete in {self.environment}.", style=self.style.SUCCESS)


class _CommandOutput:
    """A plain text stream over this command's stdout (print() and nested commands add their own newlines)."""

    def __init__(self, stdout, *, silent: bool):
        self.stdout = stdout
        self.silent = silent

    def write(self, text: str) -> int:
        if not self.silent:
            self.stdout.write(text, ending="")
        return len(text)

    def flush(self) -> None:
        self.stdout.flush()
