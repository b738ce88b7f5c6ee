"""The checks `verify_deploy` runs after every deploy (and `release` runs last).

Each check is a small named object (deploy.checks). `verify_checks()` is the
explicit, ordered list; `verify_deploy()` runs it. Every check costs a constant
number of queries, whatever the number of grants: the grants table is only
read by set-based queries (counts grouped by tool, and the access plan).
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import checks as system_checks
from django.core.files.storage import storages
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Count
from django.utils.text import slugify

from deploy.access import MIRROR, build_plan
from deploy.access_file import AccessFileError, read_access_file
from deploy.errors import first_line
from deploy.checks import (
    Check,
    CheckFailure,
    CheckReport,
    CheckWarning,
    Outcome,
    passed,
    run_checks,
    select_checks,
    warning,
)
from tools import catalogue as tool_catalogue
from tools.models import Tool, ToolAccess
from tools.sync import CatalogueDiff, diff_catalogue

# How many differences a one-line detail names before "and N more".
DETAIL_ITEMS = 3


def summarise(items: list[str], limit: int = DETAIL_ITEMS) -> str:
    """The first few items joined with "; ", then how many more (-v 2 lists them all)."""
    shown = "; ".join(items[:limit])
    if len(items) > limit:
        shown += f"; and {len(items) - limit} more (-v 2 lists them)"
    return shown


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    return f"{count:,} {singular if count == 1 else (plural_form or singular + 's')}"


class DatabaseCheck(Check):
    name = "database"
    description = "The database answers a query."

    def __init__(self, using: str = DEFAULT_DB_ALIAS):
        self.using = using

    def run(self) -> str:
        connection = connections[self.using]
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        except Exception as error:  # noqa: BLE001 - any driver error means unreachable
            # The first line only: drivers put host and port there, never the password.
            reason = first_line(error)
            raise CheckFailure(f"cannot query the {connection.vendor} database {self.using!r}: {reason}") from None
        settings_dict = connection.settings_dict
        where = settings_dict.get("NAME")
        if connection.vendor != "sqlite" and settings_dict.get("HOST"):
            where = f"{settings_dict['HOST']}/{where}"
        return f"{connection.vendor} {where}"


class MigrationsCheck(Check):
    name = "migrations"
    description = "Every migration is applied (the plan `migrate --check` uses)."

    def __init__(self, using: str = DEFAULT_DB_ALIAS):
        self.using = using

    def run(self) -> str:
        executor = MigrationExecutor(connections[self.using])
        conflicts = executor.loader.detect_conflicts()
        if conflicts:
            names = [f"{app}: {', '.join(sorted(migrations))}" for app, migrations in sorted(conflicts.items())]
            raise CheckFailure(
                f"conflicting migrations (run makemigrations --merge): {summarise(names)}", names
            )
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if plan:
            names = [
                f"{migration.app_label}.{migration.name}{' (backwards)' if backwards else ''}"
                for migration, backwards in plan
            ]
            raise CheckFailure(
                f"{plural(len(names), 'unapplied migration')}: {summarise(names)}; run `manage.py migrate`", names
            )
        applied = len(executor.loader.applied_migrations)
        return f"{plural(applied, 'migration')} applied, none pending"


def catalogue_differences(diff: CatalogueDiff) -> list[str]:
    """The ways the database's tools differ from the catalogue, one line each, by tool.

    A name or description edited in the database by hand is a "mismatch" naming the
    tool; a key changed by hand shows as the catalogue key missing and the database
    key unknown, joined into one line when the two carry the same name.
    """
    differences = []
    for update in diff.to_update:
        for field_name, (database_value, catalogue_value) in update.changes.items():
            differences.append(
                f"tool {field_name} mismatch: {update.key} is {database_value!r} in the database, "
                f"{catalogue_value!r} in the catalogue"
            )
    strays = {slugify(tool.name): tool for tool in diff.not_in_catalogue}
    for declared in diff.to_create:
        stray = strays.pop(slugify(declared.name), None)
        if stray is not None:
            differences.append(
                f"tool key mismatch: {declared.name!r} is {stray.key!r} in the database, "
                f"{declared.key!r} in the catalogue; write a RenameTool data migration"
            )
        else:
            differences.append(f"missing from the database: {declared.key} ({declared.name}); run `manage.py migrate`")
    differences += [
        f"not in the catalogue: {tool.key} ({tool.name}); rename or remove it with a data migration"
        for tool in strays.values()
    ]
    return differences


class CatalogueCheck(Check):
    name = "catalogue"
    description = "The database's tools equal the catalogue in code (keys, names, descriptions)."

    def __init__(self, using: str = DEFAULT_DB_ALIAS):
        self.using = using

    def run(self) -> str:
        # Read at run time (not bound at import) so the catalogue in code now is what is compared.
        declared = tool_catalogue.CATALOGUE
        differences = catalogue_differences(diff_catalogue(declared, using=self.using))
        if differences:
            raise CheckFailure(
                f"{plural(len(differences), 'difference')}: {summarise(differences)}", differences
            )
        return f"{plural(len(declared), 'tool')}, as declared"


class GrantTargetsCheck(Check):
    name = "grant-targets"
    description = "No grants on tools the catalogue lacks or on duplicated tools, and no duplicated grants."

    def __init__(self, using: str = DEFAULT_DB_ALIAS):
        self.using = using

    def run(self) -> str:
        catalogue = tool_catalogue.catalogue_by_key()
        tools = list(Tool.objects.using(self.using).values_list("id", "key", "name"))
        # A stray tool named like a catalogue tool (once case and punctuation go) is a duplicate:
        # typically a catalogue tool re-created by hand next to the original.
        catalogue_tools_by_slug = {slugify(name): (key, name) for _, key, name in tools if key in catalogue}
        strays = [tool for tool in tools if tool[1] not in catalogue]
        problems = []
        if strays:
            grant_counts = dict(
                ToolAccess.objects.using(self.using)
                .filter(tool_id__in=[tool_id for tool_id, _, _ in strays])
                .values_list("tool_id")
                .annotate(grants=Count("id"))
                .values_list("tool_id", "grants")
            )
            for tool_id, key, name in strays:
                count = grant_counts.get(tool_id, 0)
                if not count:
                    continue
                original = catalogue_tools_by_slug.get(slugify(name))
                if original is not None:
                    problems.append(
                        f"{plural(count, 'grant')} on {key} ({name}), a duplicate of {original[0]} ({original[1]})"
                    )
                else:
                    problems.append(f"{plural(count, 'grant')} on {key} ({name}), which the catalogue lacks")
        duplicate_pairs = self.duplicate_grant_count()
        if duplicate_pairs:
            problems.append(f"{plural(duplicate_pairs, 'user and tool pair')} granted more than once")
        if problems:
            raise CheckFailure(summarise(problems), problems)
        return "every grant is on a catalogue tool, once"

    def duplicate_grant_count(self) -> int:
        """Pairs granted twice. The unique constraint makes them impossible, so only count when it is missing."""
        connection = connections[self.using]
        table = ToolAccess._meta.db_table
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, table)
        if any(
            constraint.get("unique") and sorted(constraint.get("columns") or []) == ["tool_id", "user_id"]
            for constraint in constraints.values()
        ):
            return 0
        return (
            ToolAccess.objects.using(self.using)
            .values("user_id", "tool_id")
            .annotate(copies=Count("id"))
            .filter(copies__gt=1)
            .count()
        )


class AccessFileCheck(Check):
    name = "access-file"
    description = "The grants equal the access file for its users (missing = fail; extra = warn, fail with --strict)."

    def __init__(self, source: str | Path | None = None, strict: bool = False, using: str = DEFAULT_DB_ALIAS):
        self.source = Path(source) if source is not None else Path(settings.ACCESS_FILE)
        self.strict = strict
        self.using = using

    def run(self) -> Outcome | str:
        try:
            access_file = read_access_file(self.source)
        except AccessFileError as error:
            raise CheckFailure(str(error)) from None
        plan = build_plan(access_file, mode=MIRROR, using=self.using)
        # Mirror mode on the file's tools: what it would add is missing here, what it would remove is extra.
        missing = [f"missing: {username} → {key}" for key, username in plan.grants_to_add()]
        extra = [f"extra: {username} → {key} (not in the file)" for key, username in plan.grants_to_remove()]
        unmatched = [f"unmatched user: {user.describe()}" for user in plan.unmatched_users]
        unknown = [f"unknown tool: {tool.describe()}" for tool in plan.unknown_tools]
        specifics = missing + extra + unmatched + unknown
        parts = []
        if missing:
            parts.append(f"{plural(len(missing), 'grant')} of the file missing here (the import did not apply)")
        if extra:
            parts.append(f"{plural(len(extra), 'grant')} not in the file (granted by hand here?)")
        if unmatched:
            parts.append(f"{plural(len(unmatched), 'user')} of the file not matched here")
        if unknown:
            parts.append(f"{plural(len(unknown), 'tool')} of the file unknown here")
        if missing or (self.strict and specifics):
            raise CheckFailure(f"{self.source.name}: {'; '.join(parts)}{'' if missing else ' (--strict)'}", specifics)
        if specifics:
            raise CheckWarning(f"{self.source.name}: {'; '.join(parts)}", specifics)
        return (
            f"{self.source.name}: {plural(plan.unchanged_count, 'grant')} on "
            f"{plural(len(plan.tools), 'tool')}, all applied, none extra"
        )


class SuperuserCheck(Check):
    name = "superuser"
    description = "At least one active superuser can sign in to the admin."

    def __init__(self, using: str = DEFAULT_DB_ALIAS):
        self.using = using

    def run(self) -> str:
        superusers = list(
            get_user_model().objects.using(self.using).filter(is_superuser=True, is_active=True)
            .order_by("username").values_list("username", flat=True)[:DETAIL_ITEMS + 1]
        )
        if not superusers:
            raise CheckFailure("no active superuser; create one with `manage.py createsuperuser`")
        more = " and more" if len(superusers) > DETAIL_ITEMS else ""
        return f"active superuser{'s' if len(superusers) > 1 else ''}: {', '.join(superusers[:DETAIL_ITEMS])}{more}"


class StaticManifestCheck(Check):
    name = "static-manifest"
    description = "collectstatic's manifest (staticfiles.json) is in STATIC_ROOT when DEBUG is off."

    def run(self) -> Outcome | str:
        if settings.DEBUG:
            return "not needed: DEBUG is on"
        storage = storages["staticfiles"]
        manifest_name = getattr(storage, "manifest_name", None)
        if manifest_name is None:
            return warning(f"{type(storage).__name__} keeps no manifest; hashed, long-cached static files need "
                           "ManifestStaticFilesStorage")
        manifest_storage = getattr(storage, "manifest_storage", storage)
        path = Path(manifest_storage.path(manifest_name))
        if not path.exists():
            raise CheckFailure(f"{path} is missing; run `manage.py collectstatic --noinput`")
        try:
            paths = json.loads(path.read_text(encoding="utf-8"))["paths"]
        except (ValueError, KeyError, TypeError) as error:
            raise CheckFailure(
                f"{path} is not a staticfiles manifest ({type(error).__name__}); run collectstatic again"
            ) from None
        missing = sorted(hashed for hashed in paths.values() if not storage.exists(hashed))
        if missing:
            raise CheckFailure(
                f"{plural(len(missing), 'file')} in {path.name} missing from STATIC_ROOT: {summarise(missing)}",
                missing,
            )
        return passed(f"{path} lists {plural(len(paths), 'file')}")


class DeployChecksCheck(Check):
    name = "deploy-checks"
    description = "Django's system checks are clean, with the deployment ones (`check --deploy`) outside local."

    def run(self) -> Outcome | str:
        # Locally only the system checks: the deployment ones (HTTPS, HSTS, secure cookies) are off by design.
        deployment = settings.OMNITOOL_ENV != "local"
        command = "check --deploy" if deployment else "check (deployment checks skipped: OMNITOOL_ENV=local)"
        messages = [
            message
            for message in system_checks.run_checks(include_deployment_checks=deployment)
            if not message.is_silenced() and message.level >= system_checks.WARNING
        ]
        if not messages:
            return f"{command}: no issues"
        errors = [message for message in messages if message.is_serious()]
        specifics = [
            f"{message.id or '?'}{f' ({message.obj})' if message.obj is not None else ''}: {message.msg}"
            for message in messages
        ]
        ids = [message.id or "?" for message in messages]
        detail = (
            f"{command}: {plural(len(errors), 'error')}, {plural(len(messages) - len(errors), 'warning')}: "
            f"{', '.join(ids)}"
        )
        if errors:
            raise CheckFailure(detail, specifics)
        raise CheckWarning(detail, specifics)


def verify_checks(
    source: str | Path | None = None, strict: bool = False, using: str = DEFAULT_DB_ALIAS
) -> list[Check]:
    """The checks of `verify_deploy`, in the order they run and are reported."""
    return [
        DatabaseCheck(using),
        MigrationsCheck(using),
        CatalogueCheck(using),
        GrantTargetsCheck(using),
        AccessFileCheck(source, strict=strict, using=using),
        SuperuserCheck(using),
        StaticManifestCheck(),
        DeployChecksCheck(),
    ]


def verify_deploy(
    source: str | Path | None = None,
    strict: bool = False,
    only: Iterable[str] | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> CheckReport:
    """Run the checks (all, or those named in `only`) and return the report. Writes nothing."""
    return run_checks(select_checks(verify_checks(source, strict, using), only))
