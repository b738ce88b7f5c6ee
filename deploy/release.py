"""The release phase (`manage.py release`, Procfile `release:`), as an ordered list of named steps.

    access file → [backup] → migrate → catalogue sync → superuser → import_access (merge) → verify_deploy

The access file is read and validated first because that needs no database:
a bad file stops the release before anything is written. Each step either
returns a one-line detail or raises `ReleaseStepFailed`; `run_release` stops at
the first failure, so Heroku keeps the previous release live. The other
commands run through `call_command`, exactly as an operator would run them.

The superuser step exists for the very first release: verify_deploy requires an
active superuser, and an empty database has none. With DJANGO_SUPERUSER_USERNAME
(and _EMAIL, _PASSWORD, as Django's `createsuperuser --noinput` reads them) set,
it creates that user when no active superuser exists; otherwise it does nothing.
"""
import contextlib
import io
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from deploy.access_file import AccessFileError, read_access_file
from deploy.backups import BackupError, create_backup
from deploy.errors import first_line
from tools.sync import CatalogueConflict, sync_catalogue

RELEASE_BACKUP_LABEL = "before-release"


class ReleaseStepFailed(Exception):
    """A release step failed; the message is one line naming what."""


@dataclass(frozen=True)
class StepContext:
    """What every step gets: where the access file is, which database, how chatty nested commands are."""

    access_file: Path
    using: str
    verbosity: int
    output: io.TextIOBase  # nested commands write here (the terminal, or a buffer for --format json)


@dataclass(frozen=True)
class ReleaseStep:
    name: str
    run: Callable[[StepContext], str]  # returns a one-line detail, or raises ReleaseStepFailed


@dataclass
class StepResult:
    name: str
    status: str  # "ok", "failed" or "not run"
    detail: str = ""
    seconds: float = 0.0
    output: str = ""  # what nested commands printed (kept for --format json)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "seconds": round(self.seconds, 3),
            "output": self.output,
        }


@dataclass
class ReleaseReport:
    results: list[StepResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(result.status == "ok" for result in self.results)

    @property
    def failed_step(self) -> StepResult | None:
        return next((result for result in self.results if result.status == "failed"), None)


# The steps --------------------------------------------------------------------------------------


def check_access_file(context: StepContext) -> str:
    try:
        access_file = read_access_file(context.access_file)
    except AccessFileError as error:
        raise ReleaseStepFailed(str(error)) from None
    return f"{context.access_file}: {len(access_file.tools)} tools, {access_file.grant_count} grants, valid"


def take_backup(context: StepContext) -> str:
    if not connections[context.using].introspection.table_names():
        return "nothing to back up: the database is empty (a first release)"
    try:
        backup = create_backup(label=RELEASE_BACKUP_LABEL, using=context.using)
    except BackupError as error:
        raise ReleaseStepFailed(str(error)) from None
    return f"backup {backup.id} ({backup.size} bytes)"


def migrate(context: StepContext) -> str:
    _call("migrate", "--noinput", f"--database={context.using}", context=context)
    return "database schema up to date"


def ensure_superuser(context: StepContext) -> str:
    """A first release has nobody to sign in to the admin: create one from DJANGO_SUPERUSER_* when given."""
    users = get_user_model().objects.using(context.using)
    if users.filter(is_superuser=True, is_active=True).exists():
        return "an active superuser exists"
    username = os.environ.get("DJANGO_SUPERUSER_USERNAME")
    if not username:
        return (
            "none yet (verify_deploy will fail): set DJANGO_SUPERUSER_USERNAME, DJANGO_SUPERUSER_EMAIL and "
            "DJANGO_SUPERUSER_PASSWORD for the first release, or run createsuperuser"
        )
    if users.filter(username=username).exists():
        raise ReleaseStepFailed(
            f"DJANGO_SUPERUSER_USERNAME={username} names an existing user who is not an active superuser; "
            "promote them in the admin or choose another name"
        )
    _call("createsuperuser", "--noinput", f"--database={context.using}", context=context)
    return f"created superuser {username} from DJANGO_SUPERUSER_USERNAME"


def sync_tools(context: StepContext) -> str:
    try:
        diff = sync_catalogue(using=context.using)
    except CatalogueConflict as error:
        raise ReleaseStepFailed(f"catalogue sync failed: {error}") from None
    if context.verbosity >= 2:
        for line in diff.lines():
            context.output.write(f"  {line}\n")
    if not diff.needs_sync:
        return "catalogue and database agree" + _not_in_catalogue(diff)
    return f"{len(diff.to_create)} tools created, {len(diff.to_update)} updated" + _not_in_catalogue(diff)


def _not_in_catalogue(diff) -> str:
    return f"; {len(diff.not_in_catalogue)} tools not in the catalogue" if diff.not_in_catalogue else ""


def import_access(context: StepContext) -> str:
    _call("import_access", str(context.access_file), "--mode=merge", "--noinput", context=context)
    return f"merged {context.access_file}"


def verify_deploy(context: StepContext) -> str:
    _call("verify_deploy", f"--source={context.access_file}", context=context)
    return "no check failed"


def _call(command: str, *arguments: str, context: StepContext) -> None:
    """Run another management command; its failure (CommandError or a non-zero exit) becomes ReleaseStepFailed."""
    try:
        # post_migrate receivers print() to sys.stdout; keep that with the command's own output.
        with contextlib.redirect_stdout(context.output):
            call_command(
                command,
                *arguments,
                verbosity=context.verbosity,
                stdout=context.output,
                stderr=context.output,
            )
    except CommandError as error:
        raise ReleaseStepFailed(f"{command} failed: {error}") from None
    except SystemExit as exit:
        if exit.code not in (None, 0):
            raise ReleaseStepFailed(f"{command} exited with status {exit.code}") from None


def release_steps(*, backup: bool) -> list[ReleaseStep]:
    """The release phase, in order."""
    steps = [ReleaseStep("access file", check_access_file)]
    if backup:
        steps.append(ReleaseStep("backup", take_backup))
    steps += [
        ReleaseStep("migrate", migrate),
        ReleaseStep("catalogue sync", sync_tools),
        ReleaseStep("superuser", ensure_superuser),
        ReleaseStep("import_access", import_access),
        ReleaseStep("verify_deploy", verify_deploy),
    ]
    return steps


def run_release(
    steps: Sequence[ReleaseStep],
    *,
    access_file: Path | None = None,
    using: str = DEFAULT_DB_ALIAS,
    verbosity: int = 1,
    output: io.TextIOBase | None = None,
    on_step_start: Callable[[ReleaseStep], None] = lambda step: None,
    on_step_end: Callable[[StepResult], None] = lambda result: None,
) -> ReleaseReport:
    """Run `steps` in order, stopping at the first failure; the steps after it are reported as not run.

    With `output=None` each step's nested output is captured into its result
    (for JSON); otherwise it streams to `output` as it happens.
    """
    report = ReleaseReport()
    access_file = Path(settings.ACCESS_FILE if access_file is None else access_file)
    failed = False
    for step in steps:
        if failed:
            report.results.append(StepResult(step.name, "not run"))
            continue
        on_step_start(step)
        buffer = io.StringIO() if output is None else output
        context = StepContext(access_file, using, verbosity, buffer)
        started = time.monotonic()
        try:
            result = StepResult(step.name, "ok", step.run(context))
        except ReleaseStepFailed as error:
            result = StepResult(step.name, "failed", str(error))
            failed = True
        except DatabaseError as error:  # the database went away or refused: a failed step, not a traceback
            result = StepResult(step.name, "failed", f"database error: {first_line(error)}")
            failed = True
        result.seconds = time.monotonic() - started
        if output is None:
            result.output = buffer.getvalue()
        report.results.append(result)
        on_step_end(result)
    return report
