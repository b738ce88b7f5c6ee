"""Whole-database copies: the PostgreSQL client tools and SQLite's backup API.

Everything here works from a Django DATABASES entry (a settings dict, as
`connections[alias].settings_dict` or `dj_database_url.parse(url)` give), so
`backup`, `rollback` and `copy_database` share one way of running
`pg_dump`/`pg_restore` and of copying SQLite files.

PostgreSQL: connection details go on the command line except the password and
TLS options, which go through libpq's environment (PGPASSWORD, PGSSLMODE …) so
they never show up in `ps`. SQLite: copies use the online backup API, which
takes a consistent snapshot even while other connections write, and writes
the destination inside one transaction of its own journal.
"""
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from deploy.errors import first_line

Engine = Literal["postgresql", "sqlite"]

ENGINES: dict[str, Engine] = {
    "django.db.backends.postgresql": "postgresql",
    "django.db.backends.postgresql_psycopg2": "postgresql",
    "django.db.backends.sqlite3": "sqlite",
}

# libpq reads these from the environment; Django passes them as OPTIONS.
LIBPQ_OPTION_ENVIRONMENT = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "passfile": "PGPASSFILE",
    "service": "PGSERVICE",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "application_name": "PGAPPNAME",
}

PG_TOOL_TIMEOUT_SECONDS = 6 * 60 * 60  # a dump of a big database takes long, but never forever


class DatabaseToolError(Exception):
    """A copy, dump or restore could not run or failed; the message is one line for people."""


class RestoredWithLeftoversError(DatabaseToolError):
    """pg_restore succeeded, but tables newer than the archive could not be dropped afterwards."""


def engine_of(settings_dict: Mapping[str, Any]) -> Engine:
    """'postgresql' or 'sqlite' for a DATABASES entry; DatabaseToolError for anything else."""
    engine = ENGINES.get(settings_dict.get("ENGINE", ""))
    if engine is None:
        raise DatabaseToolError(
            f"database engine {settings_dict.get('ENGINE')!r} is not supported; use PostgreSQL or SQLite"
        )
    return engine


def describe_database(settings_dict: Mapping[str, Any]) -> str:
    """A name for people, without the password: 'PostgreSQL omnitool@db.example.com:5432' or 'SQLite /path'."""
    if engine_of(settings_dict) == "sqlite":
        return f"SQLite {settings_dict.get('NAME')}"
    host = settings_dict.get("HOST") or "localhost"
    port = settings_dict.get("PORT") or 5432
    return f"PostgreSQL {settings_dict.get('NAME')}@{host}:{port}"


# PostgreSQL -------------------------------------------------------------------------------------


def pg_connection_arguments(settings_dict: Mapping[str, Any]) -> list[str]:
    """--host/--port/--username/--dbname for a PostgreSQL DATABASES entry (never the password)."""
    arguments = []
    if settings_dict.get("HOST"):
        arguments.append(f"--host={settings_dict['HOST']}")
    if settings_dict.get("PORT"):
        arguments.append(f"--port={settings_dict['PORT']}")
    if settings_dict.get("USER"):
        arguments.append(f"--username={settings_dict['USER']}")
    if not settings_dict.get("NAME"):
        raise DatabaseToolError("the PostgreSQL database has no NAME; set it in DATABASE_URL")
    arguments.append(f"--dbname={settings_dict['NAME']}")
    return arguments


def pg_environment(
    settings_dict: Mapping[str, Any], base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The process environment for a client tool: the password and TLS options for libpq."""
    environment = dict(os.environ if base is None else base)
    # A PGPASSWORD or PGDATABASE from the caller's shell must not leak into another database's connection.
    for variable in ("PGPASSWORD", "PGDATABASE", "PGHOST", "PGPORT", "PGUSER", "PGSERVICE", "PGOPTIONS"):
        environment.pop(variable, None)
    if settings_dict.get("PASSWORD"):
        environment["PGPASSWORD"] = str(settings_dict["PASSWORD"])
    for option, variable in LIBPQ_OPTION_ENVIRONMENT.items():
        value = (settings_dict.get("OPTIONS") or {}).get(option)
        if value not in (None, ""):
            environment[variable] = str(value)
    return environment


def pg_dump_command(settings_dict: Mapping[str, Any], output: Path, program: str = "pg_dump") -> list[str]:
    """pg_dump in custom format (compressed, restorable table by table) into `output`."""
    return [program, "--format=custom", "--no-password", f"--file={output}", *pg_connection_arguments(settings_dict)]


def pg_restore_command(settings_dict: Mapping[str, Any], archive: Path, program: str = "pg_restore") -> list[str]:
    """pg_restore that replaces the database's objects with the archive's, all or nothing.

    --clean --if-exists drops what the archive holds before recreating it;
    --single-transaction makes a failure leave the database as it was;
    --no-owner lets the archive land under another role (Heroku's roles differ per database).
    """
    return [
        program,
        "--clean",
        "--if-exists",
        "--single-transaction",
        "--exit-on-error",
        "--no-owner",
        "--no-privileges",
        "--no-password",
        *pg_connection_arguments(settings_dict),
        str(archive),
    ]


def pg_restore_list_command(archive: Path, program: str = "pg_restore") -> list[str]:
    """pg_restore --list: the archive's table of contents, touching no database."""
    return [program, "--list", str(archive)]


def pg_restore_read_command(archive: Path, program: str = "pg_restore") -> list[str]:
    """pg_restore into /dev/null: reads every data block, so a truncated archive fails here, not mid-restore."""
    return [program, f"--file={os.devnull}", str(archive)]


def pg_tool_path(program: str) -> str:
    """The absolute path of a PostgreSQL client tool on PATH, or a clear error."""
    path = shutil.which(program)
    if path is None:
        raise DatabaseToolError(
            f"{program} was not found on PATH; install the PostgreSQL client tools "
            "(the same major version as the server or newer)"
        )
    return path


def pg_tool_version(program: str) -> tuple[int, int]:
    """(major, minor) of a client tool, from `program --version` ('pg_dump (PostgreSQL) 15.4 (Debian …)')."""
    path = pg_tool_path(program)
    try:
        output = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise DatabaseToolError(f"{program} --version failed: {error}") from None
    match = re.search(r"\)\s+(\d+)(?:\.(\d+))?", output)
    if match is None:
        raise DatabaseToolError(f"cannot read the version of {program} from {output.strip()!r}")
    return int(match.group(1)), int(match.group(2) or 0)


def pg_connect(settings_dict: Mapping[str, Any], *, connect_timeout: int | None = None):
    """A psycopg2 connection from a DATABASES entry; DatabaseToolError naming the
    database (never its password) when it fails."""
    import psycopg2

    options = {
        key: value for key, value in (settings_dict.get("OPTIONS") or {}).items() if key in LIBPQ_OPTION_ENVIRONMENT
    }
    if connect_timeout is not None:
        options.setdefault("connect_timeout", connect_timeout)
    try:
        return psycopg2.connect(
            dbname=settings_dict.get("NAME"),
            user=settings_dict.get("USER") or None,
            password=settings_dict.get("PASSWORD") or None,
            host=settings_dict.get("HOST") or None,
            port=settings_dict.get("PORT") or None,
            **options,
        )
    except psycopg2.Error as error:
        reason = first_line(error)
        password = str(settings_dict.get("PASSWORD") or "")
        if password:
            reason = reason.replace(password, "***")
        raise DatabaseToolError(f"cannot connect to {describe_database(settings_dict)}: {reason}") from None


def pg_server_version(settings_dict: Mapping[str, Any]) -> int:
    """The server's version number (150004 for 15.4), asked over a short-lived connection."""
    connection = pg_connect(settings_dict)
    try:
        return connection.server_version
    finally:
        connection.close()


def require_pg_tool(program: str, server_version: int) -> str:
    """The path of `program` when it can handle a server of `server_version`; else a clear error.

    pg_dump refuses to dump a newer server, and pg_restore cannot read archives
    that a newer pg_dump wrote, so the client's major version must be at least
    the server's.
    """
    path = pg_tool_path(program)
    client_major, client_minor = pg_tool_version(program)
    server_major = server_version // 10000
    if client_major < server_major:
        raise DatabaseToolError(
            f"{program} {client_major}.{client_minor} is older than the PostgreSQL {server_major} server; "
            f"install the PostgreSQL {server_major} client tools"
        )
    return path


def run_pg_tool(command: list[str], environment: Mapping[str, str]) -> subprocess.CompletedProcess:
    """Run a client tool; a failure becomes DatabaseToolError with the tool's own first error line."""
    try:
        result = subprocess.run(
            command, env=dict(environment), capture_output=True, text=True, timeout=PG_TOOL_TIMEOUT_SECONDS
        )
    except FileNotFoundError:
        raise DatabaseToolError(f"{command[0]} was not found; install the PostgreSQL client tools") from None
    except subprocess.TimeoutExpired:
        raise DatabaseToolError(f"{Path(command[0]).name} did not finish within {PG_TOOL_TIMEOUT_SECONDS} s") from None
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        detail = next((line for line in errors if "error" in line.lower()), errors[0] if errors else "no message")
        raise DatabaseToolError(f"{Path(command[0]).name} failed (exit {result.returncode}): {detail.strip()}")
    return result


def pg_dump(settings_dict: Mapping[str, Any], output: Path) -> None:
    """Dump a PostgreSQL database in custom format into `output` (which the caller makes atomic)."""
    program = require_pg_tool("pg_dump", pg_server_version(settings_dict))
    run_pg_tool(pg_dump_command(settings_dict, output, program), pg_environment(settings_dict))


def pg_check_archive(archive: Path) -> int:
    """Read a custom-format archive from end to end; return its entry count, or raise when unreadable."""
    program = pg_tool_path("pg_restore")
    environment = pg_environment({})
    try:
        listing = run_pg_tool(pg_restore_list_command(archive, program), environment)
        run_pg_tool(pg_restore_read_command(archive, program), environment)
    except DatabaseToolError as error:
        raise DatabaseToolError(f"{archive.name} is not a complete pg_dump archive: {error}") from None
    entries = [line for line in listing.stdout.splitlines() if line.strip() and not line.startswith(";")]
    if not entries:
        raise DatabaseToolError(f"{archive.name} is a pg_dump archive with nothing in it")
    return len(entries)


def pg_restore(settings_dict: Mapping[str, Any], archive: Path) -> list[str]:
    """Make the database equal the archive: restore its objects in one transaction (a failure changes
    nothing), then drop the tables the archive does not have. Returns the dropped tables' names.

    --clean only drops what the archive holds, so a table created after the dump
    (a newer migration's) would survive the restore and make the next `migrate`
    fail with "relation already exists".
    """
    program = require_pg_tool("pg_restore", pg_server_version(settings_dict))
    archived = pg_archive_tables(archive, program)
    run_pg_tool(pg_restore_command(settings_dict, archive, program), pg_environment(settings_dict))
    return pg_drop_tables_except(settings_dict, archived)


TOC_TABLE_LINE = re.compile(r"^\d+; \d+ \d+ TABLE (?P<schema>\S+) (?P<name>\S+) ")


def pg_archive_tables(archive: Path, program: str = "pg_restore") -> set[tuple[str, str]]:
    """(schema, table) for every table in a custom-format archive, from its table of contents."""
    listing = run_pg_tool(pg_restore_list_command(archive, program), pg_environment({})).stdout
    return {(match["schema"], match["name"]) for match in map(TOC_TABLE_LINE.match, listing.splitlines()) if match}


def pg_drop_tables_except(settings_dict: Mapping[str, Any], keep: set[tuple[str, str]]) -> list[str]:
    """Drop, in one transaction, the tables of `keep`'s schemas that `keep` lacks; return their names."""
    import psycopg2
    from psycopg2 import sql

    schemas = sorted({schema for schema, _ in keep})
    if not schemas:
        return []
    connection = pg_connect(settings_dict)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_type = 'BASE TABLE' AND table_schema = ANY(%s) ORDER BY 1, 2",
                [schemas],
            )
            extra = [(schema, name) for schema, name in cursor.fetchall() if (schema, name) not in keep]
            for schema, name in extra:
                cursor.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(schema, name)))
    except psycopg2.Error as error:
        reason = first_line(error)
        raise RestoredWithLeftoversError(
            f"the archive was restored, but dropping the tables it lacks failed: {reason}"
        ) from None
    finally:
        connection.close()
    return [f"{schema}.{name}" for schema, name in extra]


# SQLite -----------------------------------------------------------------------------------------


def sqlite_path(settings_dict: Mapping[str, Any]) -> Path:
    """The file of a SQLite DATABASES entry; in-memory databases have none and cannot be copied."""
    name = str(settings_dict.get("NAME") or "")
    if not name or name == ":memory:" or "mode=memory" in name:
        raise DatabaseToolError("the SQLite database is in memory; there is no file to back up or restore")
    return Path(name)


def sqlite_copy(source: Path, target: Path) -> None:
    """Copy the SQLite database `source` into `target` with the backup API (a consistent snapshot).

    `target` is replaced as a whole in one transaction of its own journal, so
    readers of `target` see either the old or the new database.
    """
    if not source.is_file():
        raise DatabaseToolError(f"SQLite database {source} does not exist")
    try:
        source_connection = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise DatabaseToolError(f"cannot open SQLite database {source}: {error}") from None
    try:
        target_connection = sqlite3.connect(target, timeout=30)
        try:
            source_connection.backup(target_connection)
        except sqlite3.Error as error:
            raise DatabaseToolError(f"copying SQLite database {source.name} failed: {error}") from None
        finally:
            target_connection.close()
    finally:
        source_connection.close()


def sqlite_integrity_errors(path: Path) -> list[str]:
    """What `PRAGMA integrity_check` finds wrong in a SQLite file; [] when it is sound."""
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = connection.execute("PRAGMA integrity_check").fetchall()
            if not connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                return ["the database has no tables"]
        finally:
            connection.close()
    except sqlite3.Error as error:
        return [str(error)]
    problems = [row[0] for row in rows]
    return [] if problems == ["ok"] else problems


def sqlite_table_names(path: Path) -> set[str]:
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        connection.close()
