"""A scratch PostgreSQL database that subprocesses of manage.py can share.

The crash and concurrency tests need committed data that several processes
see, which pytest-django's test database (one transaction per test) cannot
give. `scratch_database(suffix)` creates `<DATABASE_URL's name>_<suffix>` on
the same server (omnitool_f_crash for DATABASE_URL=.../omnitool_f), migrates
it with a real `manage.py migrate`, yields a `ScratchDatabase`, and drops it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import dj_database_url
import psycopg2

from tests.support.databases import create_database, drop_databases
from tests.support.gunicorn import PROJECT_ROOT, SETTINGS_VARIABLES


@dataclass
class ScratchDatabase:
    url: str
    name: str
    connection_options: dict

    def connect(self, autocommit: bool = True):
        connection = psycopg2.connect(dbname=self.name, **self.connection_options)
        connection.autocommit = autocommit
        return connection

    def environment(self) -> dict[str, str]:
        """A clean environment for manage.py on this database (local settings)."""
        env = {key: value for key, value in os.environ.items() if key not in SETTINGS_VARIABLES}
        env.update({"DATABASE_URL": self.url, "OMNITOOL_ENV": "local", "DJANGO_SETTINGS_MODULE": "omnitool.settings"})
        return env

    def manage_command(self, *arguments: str) -> list[str]:
        return [sys.executable, "manage.py", *arguments]

    def manage(self, *arguments: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.manage_command(*arguments), cwd=PROJECT_ROOT, env=self.environment(),
            capture_output=True, text=True, timeout=timeout,
        )

    def popen(self, *arguments: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(
            self.manage_command(*arguments), cwd=PROJECT_ROOT, env=self.environment(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs,
        )

    def query(self, statement: str, parameters=()) -> list[tuple]:
        with self.connect() as connection, connection.cursor() as cursor:
            cursor.execute(statement, parameters)
            return cursor.fetchall() if cursor.description else []

    def execute(self, statement: str, parameters=()) -> None:
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement, parameters)
        finally:
            connection.close()


def _server_options(url: str) -> tuple[str, dict]:
    config = dj_database_url.parse(url)
    options = {"host": config["HOST"] or None, "port": config["PORT"] or None, "user": config["USER"] or None}
    if config.get("PASSWORD"):
        options["password"] = config["PASSWORD"]
    return config["NAME"], {key: value for key, value in options.items() if value}


@contextmanager
def scratch_database(suffix: str) -> Iterator[ScratchDatabase]:
    """A migrated scratch database next to DATABASE_URL's, dropped afterwards."""
    base_url = os.environ["DATABASE_URL"]
    base_name, options = _server_options(base_url)
    name = f"{base_name}_{suffix}"
    drop_databases(name)
    create_database(name)
    url = urlunsplit(urlsplit(base_url)._replace(path=f"/{name}"))
    database = ScratchDatabase(url=url, name=name, connection_options=options)
    try:
        migrated = database.manage("migrate", "--noinput", "--verbosity", "0")
        assert migrated.returncode == 0, migrated.stderr
        yield database
    finally:
        drop_databases(name)
