"""A throwaway OmniTool site for backup, rollback and release tests: its own database
and BACKUP_DIR, driven through `manage.py` subprocesses.

Restores replace a whole database, which cannot happen inside pytest-django's
test database (in memory on SQLite, inside a transaction on PostgreSQL). So a
`ScratchSite` gets a database of its own, of the engine the test run uses:

- SQLite (the run has no DATABASE_URL): a file in the test's tmp_path;
- PostgreSQL: a database named `omnitool_b_<random>` on the run's server,
  created from a session-wide template and dropped when the test ends.

`migrated_site` starts from a migrated database with the demo data;
`fresh_site` from an empty one.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings

from tests.support.databases import create_database, database_url, drop_databases

ROOT = Path(__file__).resolve().parents[2]
DATABASE_PREFIX = "omnitool_b_"
# Everything omnitool/settings.py reads; a site's processes get only what the test gives them.
SETTINGS_VARIABLES = {
    "OMNITOOL_ENV", "DATABASE_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS",
    "BACKUP_DIR", "BACKUP_KEEP", "BACKUP_ON_RELEASE", "ACCESS_FILE", "ACCESS_FILE_MAX_BYTES",
    "ACCESS_SNAPSHOT_KEEP", "RELEASE_VERSION", "HEROKU_RELEASE_VERSION", "HEROKU_SLUG_COMMIT",
    "CONN_MAX_AGE", "STATIC_ROOT", "SECURE_SSL_REDIRECT", "DEPLOY_WEBHOOK_URL", "DJANGO_SETTINGS_MODULE",
}
PRODUCTION = {
    "OMNITOOL_ENV": "production",
    "SECRET_KEY": "scratch-site-" + "q8#Zp2!v" * 6,
    "ALLOWED_HOSTS": "omnitool.example.com",
}
# Rows per model, for comparing whole databases.
COUNT_ROWS = (
    "import json; from django.apps import apps; "
    "print(json.dumps({model._meta.label: model._base_manager.count() for model in apps.get_models()}))"
)
# `export_access --output -` and the row counts from one process (each process start costs ~0.5 s).
EXPORT_AND_COUNT_ROWS = (
    "import io, json; from django.apps import apps; from django.core.management import call_command; "
    "exported = io.StringIO(); call_command('export_access', '--output', '-', stdout=exported); "
    "print(json.dumps({'export': exported.getvalue(), "
    "'counts': {model._meta.label: model._base_manager.count() for model in apps.get_models()}}))"
)


def run_engine() -> str:
    """The engine of this pytest run's database: the scratch sites use the same one."""
    return "postgresql" if "postgresql" in settings.DATABASES["default"]["ENGINE"] else "sqlite"


@dataclass
class ScratchSite:
    database_url: str
    backup_dir: Path
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def database_description(self) -> str:
        """How the deploy commands name this database: 'SQLite /path' or 'PostgreSQL name@host:port'."""
        parsed = urllib.parse.urlsplit(self.database_url)
        if parsed.scheme == "sqlite":
            return f"SQLite {parsed.path[1:]}"
        return f"PostgreSQL {parsed.path[1:]}@{parsed.hostname}:{parsed.port or 5432}"

    def manage(self, *arguments: str, **environment: str) -> subprocess.CompletedProcess:
        """Run `manage.py ARGUMENTS` against this site; keyword arguments add environment variables."""
        process_environment = {key: value for key, value in os.environ.items() if key not in SETTINGS_VARIABLES}
        process_environment.update(
            {"DATABASE_URL": self.database_url, "BACKUP_DIR": str(self.backup_dir), **self.environment, **environment}
        )
        return subprocess.run(
            [sys.executable, "manage.py", *arguments],
            cwd=ROOT,
            env=process_environment,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )

    def ok(self, *arguments: str, **environment: str) -> subprocess.CompletedProcess:
        result = self.manage(*arguments, **environment)
        assert result.returncode == 0, f"manage.py {' '.join(arguments)} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def shell(self, code: str) -> str:
        return self.ok("shell", "--no-imports", "-c", code).stdout

    def row_counts(self) -> dict[str, int]:
        return json.loads(self.shell(COUNT_ROWS).strip().splitlines()[-1])

    def state(self) -> tuple[str, dict[str, int]]:
        """(`export_access --output -`, rows per model): what a rollback must bring back."""
        document = json.loads(self.shell(EXPORT_AND_COUNT_ROWS).strip().splitlines()[-1])
        return document["export"], document["counts"]

    def exported_access(self) -> str:
        return self.ok("export_access", "--output", "-").stdout

    def backups(self) -> list[dict]:
        return json.loads(self.ok("backup", "--list", "--format", "json").stdout)["backups"]


def create_postgresql_database(template: str | None = None) -> str:
    name = f"{DATABASE_PREFIX}{uuid.uuid4().hex[:12]}"
    create_database(name, template)
    return name


def drop_postgresql_database(name: str) -> None:
    assert name.startswith(DATABASE_PREFIX)
    drop_databases(name)


@pytest.fixture(scope="session")
def site_template(tmp_path_factory) -> Iterator[str]:
    """A migrated database with the demo data, to copy for each test: a SQLite file or a PostgreSQL database name."""
    if run_engine() == "sqlite":
        directory = tmp_path_factory.mktemp("template")
        template = ScratchSite(f"sqlite:///{directory / 'db.sqlite3'}", directory / "backups")
        template.ok("migrate", "--noinput", "-v", "0")
        template.ok("load_demo")
        yield str(directory / "db.sqlite3")
        return
    name = create_postgresql_database()
    try:
        template = ScratchSite(database_url(name), tmp_path_factory.mktemp("template") / "backups")
        template.ok("migrate", "--noinput", "-v", "0")
        template.ok("load_demo")
        yield name
    finally:
        drop_postgresql_database(name)


@pytest.fixture
def migrated_site(site_template, tmp_path) -> Iterator[ScratchSite]:
    """A site whose database is migrated and holds the demo users, tools and grants."""
    if run_engine() == "sqlite":
        shutil.copyfile(site_template, tmp_path / "db.sqlite3")
        yield ScratchSite(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path / "backups")
        return
    name = create_postgresql_database(template=site_template)
    try:
        yield ScratchSite(database_url(name), tmp_path / "backups")
    finally:
        drop_postgresql_database(name)


@pytest.fixture
def fresh_site(tmp_path) -> Iterator[ScratchSite]:
    """A site whose database is empty: no tables at all."""
    if run_engine() == "sqlite":
        yield ScratchSite(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path / "backups")
        return
    name = create_postgresql_database()
    try:
        yield ScratchSite(database_url(name), tmp_path / "backups")
    finally:
        drop_postgresql_database(name)
