"""Scratch PostgreSQL databases on the suite's server, for tests whose
subprocesses (manage.py, gunicorn) need committed data of their own.

CREATE and DROP DATABASE cannot run in a transaction, so they go through an
autocommit connection to the server's `postgres` database; connection details
come from the suite's DATABASES["default"] (DATABASE_URL).
"""
from django.conf import settings
from psycopg2 import sql

from deploy.databases import pg_connect


def administer(*statements: sql.Composable) -> None:
    """Run statements that must not be in a transaction (CREATE/DROP DATABASE) on the server."""
    connection = pg_connect({**settings.DATABASES["default"], "NAME": "postgres"})
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        connection.close()


def create_database(name: str, template: str | None = None) -> None:
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    administer(statement)


def drop_databases(*names: str) -> None:
    """Drop the databases, ending their sessions; missing ones are fine."""
    administer(*(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)) for name in names))


def database_url(name: str, *, password: str = "") -> str:
    """A DATABASE_URL for database `name` on the suite's server."""
    server = settings.DATABASES["default"]
    password = password or server.get("PASSWORD") or ""
    user = server.get("USER") or "postgres"
    credentials = f"{user}:{password}" if password else user
    return f"postgres://{credentials}@{server.get('HOST') or '127.0.0.1'}:{server.get('PORT') or 5432}/{name}"
