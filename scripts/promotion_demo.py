#!/usr/bin/env python
"""`make demo`: the dev → staging → production journey, on one machine.

Three environments, each its own database (SQLite files by default;
PostgreSQL databases when DEMO_DATABASE_URL names a server), run the project's
real commands in order:

1. code v1 adds a tool (a catalogue entry and its page); in "local" the tool is
   granted to everyone except user_a and `export_access` writes the access file;
2. "staging" runs `release` (migrate, catalogue sync, import, verify) and `smoke`
   against a gunicorn serving it; "production" runs `release --backup`;
3. code v2 renames the tool's key with a data migration (tools.operations.RenameTool)
   and is promoted the same way;
4. the grants are compared across environments: user_a has the tool nowhere, the
   rename kept every grant, and a production user whose email differs from the
   file's was never granted;
5. production is rolled back (`rollback --noinput --confirm production`: the
   database as it was before v2) to code v1, and verified.

Code changes are made in copies of the project under the work directory; the
real catalogue and migrations are never touched. Every step prints its command,
its output and its exit code; the demo stops at the first failing step and
exits 1. Databases and the work directory are removed at the end (keep the
directory with --keep).

    python scripts/promotion_demo.py [--workdir DIR] [--keep]
    DEMO_DATABASE_URL=postgres://postgres@127.0.0.1:5432/ python scripts/promotion_demo.py

With PostgreSQL the databases are <name>_local, <name>_staging and
<name>_production, where <name> is the URL's database name (omnitool_demo when
the URL names none). They are dropped first if a previous run left them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENT_NAMES = ("local", "staging", "production")
DEFAULT_DATABASE_PREFIX = "omnitool_demo"
COMMAND_TIMEOUT = 300  # seconds for one manage.py command

# What a copy of the project leaves out: environments, caches, databases and build output.
COPY_IGNORE = shutil.ignore_patterns(
    ".venv*",
    ".git",
    "var",
    "staticfiles",
    "db*.sqlite3",
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    ".hypothesis",
    "node_modules",
    "test-artifacts",
)

# Settings variables of the calling shell (or test run) that must not leak into an environment.
SETTINGS_VARIABLES = frozenset(
    {
        "OMNITOOL_ENV",
        "DATABASE_URL",
        "SECRET_KEY",
        "DEBUG",
        "ALLOWED_HOSTS",
        "CSRF_TRUSTED_ORIGINS",
        "RELEASE_VERSION",
        "HEROKU_RELEASE_VERSION",
        "HEROKU_SLUG_COMMIT",
        "STATIC_ROOT",
        "SECURE_SSL_REDIRECT",
        "CONN_MAX_AGE",
        "BACKUP_DIR",
        "BACKUP_KEEP",
        "BACKUP_ON_RELEASE",
        "ACCESS_FILE",
        "ACCESS_FILE_MAX_BYTES",
        "ACCESS_SNAPSHOT_KEEP",
        "SMOKE_USERNAME",
        "SMOKE_PASSWORD",
        "DEPLOY_WEBHOOK_URL",
        "DEPLOY_WEBHOOK_FORMAT",
        "DJANGO_SETTINGS_MODULE",
        "GUNICORN_CMD_ARGS",
        "WEB_CONCURRENCY",
        "PORT",
    }
)

# The tool that code v1 adds and code v2 renames.
NEW_TOOL_KEY = "expense-report"
NEW_TOOL_NAME = "Expense Report"
RENAMED_TOOL_KEY = "expense-claims"
RENAMED_TOOL_NAME = "Expense Claims"
EXCLUDED_USER = "user_a"

# The same people exist in every environment; the access file matches them by (username, email).
DEMO_USERS = {
    "admin": "admin@example.com",
    **{name: f"{name}@example.com" for name in ("alice", "bob", "carol", "dave", EXCLUDED_USER)},
}
# In production one username belongs to someone else: the file must never grant to them.
PRODUCTION_EMAIL_MISMATCH = {"dave": "dave@contractor.example"}

NEW_TOOL_PAGE = '''\
"""Expense Report: submit an expense and see who approves it (added by the promotion demo)."""
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html


def expense_report(request: HttpRequest, tool) -> HttpResponse:
    return HttpResponse(format_html("<h1>{}</h1><p>{}</p>", tool.name, tool.description))
'''

NEW_TOOL_ENTRY = f'''\
    CatalogueTool(
        key="{NEW_TOOL_KEY}",
        name="{NEW_TOOL_NAME}",
        description="Submit an expense and see who approves it.",
        view="tools.pages.expense_report.expense_report",
    ),
'''

RENAME_MIGRATION = '''\
"""{old_name} ({old_key}) became {new_name} ({new_key}). Every grant follows the tool."""
from django.db import migrations

from tools.operations import RenameTool


class Migration(migrations.Migration):
    dependencies = [("tools", "{previous}")]

    operations = [
        RenameTool("{old_key}", "{new_key}", new_name="{new_name}", old_name="{old_name}"),
    ]
'''

GRANT_TO_ALL_EXCEPT = (
    "from accounts.models import User\n"
    "from tools.grants import grant_to_all_active_users_except\n"
    "from tools.models import Tool\n"
    "excluded = User.objects.filter(username={excluded!r}).values_list('pk', flat=True)\n"
    "result = grant_to_all_active_users_except(Tool.objects.filter(key={key!r}), excluded)\n"
    "print(f'granted {key} to {{result.total_created}} users; excluded: {{result.excluded_usernames}}')"
)

CREATE_USERS = (
    "from accounts.models import User\n"
    "for username, email in {users!r}.items():\n"
    "    user, created = User.objects.get_or_create(username=username, defaults={{'email': email}})\n"
    "    user.is_staff = user.is_superuser = username == 'admin'\n"
    "    user.set_unusable_password()\n"
    "    user.save()\n"
    "    print(('created ' if created else 'kept ') + username + ' <' + user.email + '>')"
)


class DemoFailure(Exception):
    """A step failed; the demo stops."""


@dataclass(frozen=True)
class CodeVersion:
    """One version of the code: a copy of the project, as a deploy would ship it."""

    name: str  # v1, v2: also the RELEASE_VERSION that /healthz/ reports
    path: Path


@dataclass(frozen=True)
class Environment:
    """One of local, staging, production: its database and its own backups."""

    name: str
    database_url: str
    backup_dir: Path

    def variables(self, code: CodeVersion) -> dict[str, str]:
        variables = {
            "OMNITOOL_ENV": self.name,
            "DATABASE_URL": self.database_url,
            "BACKUP_DIR": str(self.backup_dir),
            "RELEASE_VERSION": code.name,
            "DJANGO_SETTINGS_MODULE": "omnitool.settings",
        }
        if self.name != "local":
            variables.update(
                {
                    "SECRET_KEY": f"promotion-demo-{self.name}-key-only-for-this-machine-{os.getpid()}",
                    "ALLOWED_HOSTS": "127.0.0.1,localhost",
                    # No TLS on loopback; on Heroku the router terminates it.
                    "SECURE_SSL_REDIRECT": "false",
                }
            )
        return variables


@dataclass
class StepRecord:
    number: int
    title: str
    exit_code: int
    seconds: float


@dataclass
class Journey:
    """Prints and runs the steps, numbering them, and remembers how each went."""

    out: object = sys.stdout
    records: list[StepRecord] = field(default_factory=list)

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def section(self, title: str) -> None:
        self.say()
        self.say(f"=== {title}")

    def _begin(self, title: str, shown_command: str) -> tuple[int, float]:
        number = len(self.records) + 1
        self.say()
        self.say(f"--- {number}. {title}")
        self.say(f"    $ {shown_command}")
        return number, time.monotonic()

    def _end(self, number: int, title: str, exit_code: int, started: float, output: str) -> None:
        for line in output.rstrip("\n").splitlines():
            self.say(f"    | {line}")
        seconds = time.monotonic() - started
        self.records.append(StepRecord(number, title, exit_code, seconds))
        verdict = "ok" if exit_code == 0 else "FAILED"
        self.say(f"    -> exit {exit_code} ({seconds:.1f} s) {verdict}")
        if exit_code != 0:
            raise DemoFailure(f"step {number} ({title}) exited {exit_code}")

    def manage(
        self,
        title: str,
        environment: Environment,
        code: CodeVersion,
        *arguments: str,
        summarise: Callable[[str], str] | None = None,
    ) -> str:
        """Run `python manage.py ARGUMENTS` in `environment` with `code`; return its stdout.

        `summarise` turns stdout into what to show (for machine output such as `export_access --output -`).
        """
        number, started = self._begin(title, shown_command(environment, code, arguments))
        env = {key: value for key, value in os.environ.items() if key not in SETTINGS_VARIABLES}
        env.update(environment.variables(code))
        try:
            result = subprocess.run(
                [sys.executable, "manage.py", *arguments],
                cwd=code.path,
                env=env,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
            )
            exit_code, stdout, stderr = result.returncode, result.stdout, result.stderr
        except subprocess.TimeoutExpired as timeout:
            partial = timeout.stdout or b""
            stdout = partial.decode(errors="replace") if isinstance(partial, bytes) else partial
            exit_code, stderr = 124, f"timed out after {COMMAND_TIMEOUT} s"
        shown = stdout
        if summarise is not None and exit_code == 0:
            try:
                shown = summarise(stdout)
            except (ValueError, KeyError, TypeError) as error:
                shown, exit_code = f"{stdout}\nunreadable output: {error!r}", 1
        self._end(number, title, exit_code, started, shown + stderr)
        return stdout

    def action(self, title: str, shown_command: str, work: Callable[[], str]) -> None:
        """A step that is not a command (a code change, a comparison): `work` returns what to show or raises."""
        number, started = self._begin(title, shown_command)
        try:
            output, exit_code = work(), 0
        except Exception as error:  # the demo reports any failure as this step's, then stops
            output, exit_code = f"{type(error).__name__}: {error}", 1
        self._end(number, title, exit_code, started, output)


def shown_command(environment: Environment, code: CodeVersion, arguments: tuple[str, ...]) -> str:
    """The command as a person would type it; the code of `shell -c` on its own lines."""
    prefix = f"OMNITOOL_ENV={environment.name} python manage.py"
    if arguments[:1] == ("shell",) and "-c" in arguments:
        at = arguments.index("-c")
        code_lines = arguments[at + 1].splitlines()
        flags = shlex.join(arguments[:at] + arguments[at + 2 :])
        return f"{prefix} {flags} -c '...'   [code {code.name}]\n" + "\n".join(
            f"      >>> {line}" for line in code_lines
        )
    return f"{prefix} {shlex.join(arguments)}   [code {code.name}]"


# Databases


def sqlite_environments(directory: Path) -> list[Environment]:
    directory.mkdir(parents=True, exist_ok=True)
    return [
        Environment(name, f"sqlite:///{directory / f'{name}.sqlite3'}", directory.parent / "backups" / name)
        for name in ENVIRONMENT_NAMES
    ]


@dataclass(frozen=True)
class PostgresqlServer:
    """The server DEMO_DATABASE_URL names, and the demo's database names on it."""

    url: str
    prefix: str

    @classmethod
    def from_url(cls, url: str) -> PostgresqlServer:
        parts = urlsplit(url)
        if parts.scheme not in ("postgres", "postgresql", "pgsql"):
            raise ValueError(f"DEMO_DATABASE_URL must be a postgres:// URL, not {parts.scheme or url!r}")
        prefix = parts.path.strip("/") or DEFAULT_DATABASE_PREFIX
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", prefix):
            raise ValueError(f"DEMO_DATABASE_URL's database name {prefix!r} must be lower-case letters, digits, _")
        return cls(url, prefix)

    def database_name(self, environment: str) -> str:
        return f"{self.prefix}_{environment}"

    def database_url(self, database: str) -> str:
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))

    def shown(self) -> str:
        """The server without its password."""
        parts = urlsplit(self.url)
        user = f"{parts.username}@" if parts.username else ""
        return f"{parts.scheme}://{user}{parts.hostname}:{parts.port or 5432}/"

    def _execute(self, statements: list[str]) -> None:
        import psycopg2

        parts = urlsplit(self.url)
        connection = psycopg2.connect(
            host=parts.hostname,
            port=parts.port or 5432,
            user=parts.username or "postgres",
            password=parts.password,
            dbname="postgres",
            connect_timeout=5,
        )
        try:
            connection.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
            with connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            connection.close()

    def create(self) -> str:
        names = [self.database_name(environment) for environment in ENVIRONMENT_NAMES]
        self._execute(
            [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names]
            + [f'CREATE DATABASE "{name}"' for name in names]
        )
        return f"created {', '.join(names)} on {self.shown()}"

    def drop(self) -> None:
        self._execute(
            [f'DROP DATABASE IF EXISTS "{self.database_name(name)}" WITH (FORCE)' for name in ENVIRONMENT_NAMES]
        )

    def environments(self, backups: Path) -> list[Environment]:
        return [
            Environment(name, self.database_url(self.database_name(name)), backups / name) for name in ENVIRONMENT_NAMES
        ]


# Code versions


def copy_project(destination: Path) -> None:
    shutil.copytree(PROJECT_ROOT, destination, ignore=COPY_IGNORE)


def add_tool(code: Path) -> str:
    """Code v1: a new catalogue entry and its page (sync creates the tool after migrate)."""
    catalogue = code / "tools" / "catalogue.py"
    text = catalogue.read_text()
    start = text.index("CATALOGUE: tuple[CatalogueTool, ...] = (")
    end = text.index("\n)\n", start) + 1
    catalogue.write_text(text[:end] + NEW_TOOL_ENTRY + text[end:])
    (code / "tools" / "pages" / "expense_report.py").write_text(NEW_TOOL_PAGE)
    return (
        f"tools/catalogue.py: + CatalogueTool(key={NEW_TOOL_KEY!r}, name={NEW_TOOL_NAME!r})\n"
        f"tools/pages/expense_report.py: new page\n"
        f"code v1 is {code}"
    )


def newest_migration(code: Path) -> str:
    names = sorted(path.stem for path in (code / "tools" / "migrations").glob("[0-9][0-9][0-9][0-9]_*.py"))
    return names[-1]


def rename_tool(code: Path) -> str:
    """Code v2: the key and name change in the catalogue, and a data migration moves the tool with its grants."""
    catalogue = code / "tools" / "catalogue.py"
    text = catalogue.read_text()
    old_entry = f'key="{NEW_TOOL_KEY}",\n        name="{NEW_TOOL_NAME}",'
    if old_entry not in text:
        raise ValueError(f"{catalogue} has no {NEW_TOOL_KEY} entry to rename")
    catalogue.write_text(text.replace(old_entry, f'key="{RENAMED_TOOL_KEY}",\n        name="{RENAMED_TOOL_NAME}",'))
    previous = newest_migration(code)
    number = int(previous[:4]) + 1
    migration = (
        code
        / "tools"
        / "migrations"
        / (f"{number:04d}_rename_tool_{NEW_TOOL_KEY}_{RENAMED_TOOL_KEY}".replace("-", "_") + ".py")
    )
    migration.write_text(
        RENAME_MIGRATION.format(
            previous=previous,
            old_key=NEW_TOOL_KEY,
            new_key=RENAMED_TOOL_KEY,
            old_name=NEW_TOOL_NAME,
            new_name=RENAMED_TOOL_NAME,
        )
    )
    return (
        f"tools/catalogue.py: {NEW_TOOL_KEY} ({NEW_TOOL_NAME}) -> {RENAMED_TOOL_KEY} ({RENAMED_TOOL_NAME})\n"
        f"tools/migrations/{migration.name}: RenameTool({NEW_TOOL_KEY!r}, {RENAMED_TOOL_KEY!r}) after {previous}\n"
        f"code v2 is {code}"
    )


# A running environment


def listening_socket() -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.set_inheritable(True)
    return listener


@contextmanager
def serving(environment: Environment, code: CodeVersion, log_path: Path, journey: Journey) -> Iterator[str]:
    """gunicorn serving `environment` with `code` on a free loopback port; yields its URL."""
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS_VARIABLES}
    env.update(environment.variables(code))
    listener = listening_socket()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    journey.say()
    journey.say(f"    (gunicorn omnitool.wsgi serving {environment.name}, code {code.name}, at {url})")
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "omnitool.wsgi",
                "--bind",
                f"fd://{listener.fileno()}",
                "--workers",
                "1",
                "--graceful-timeout",
                "2",
                "--access-logfile",
                "-",
                "--error-logfile",
                "-",
            ],
            cwd=code.path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=(listener.fileno(),),
        )
    listener.close()  # gunicorn holds its own copy of the socket
    try:
        wait_until_answering(f"{url}/healthz/", process, log_path)
        yield url
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until_answering(url: str, process: subprocess.Popen, log_path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise DemoFailure(f"gunicorn exited with {process.returncode}:\n{log_path.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # any answer means it is up; smoke judges the answer
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise DemoFailure(f"gunicorn did not answer {url} within {timeout:g} s") from None
            time.sleep(0.1)


# What the environments hold


def grants_by_tool(access_file_text: str) -> dict[str, list[str]]:
    """tool key -> usernames granted, from `export_access --output -`."""
    document = json.loads(access_file_text)
    return {tool["key"]: [user["username"] for user in tool["users"]] for tool in document["tools"]}


def describe_grants(grants: dict[str, list[str]]) -> str:
    return "\n".join(f"{key}: {', '.join(users) or '(nobody)'}" for key, users in sorted(grants.items()))


class PromotionDemo:
    """The journey itself; each method is one part of it."""

    def __init__(self, workdir: Path, environments: list[Environment], journey: Journey):
        self.workdir = workdir
        self.local, self.staging, self.production = environments
        self.journey = journey
        self.v1 = CodeVersion("v1", workdir / "code-v1")
        self.v2 = CodeVersion("v2", workdir / "code-v2")
        self.grants: dict[tuple[str, str], dict[str, list[str]]] = {}  # (environment, moment) -> grants

    def run(self) -> None:
        self.build_v1()
        self.develop_locally()
        self.provision(self.staging)
        self.journey.section("staging: release v1, then smoke-test it live")
        self.journey.manage(
            "staging: release v1 (migrate, sync the catalogue, import the access file, verify)",
            self.staging,
            self.v1,
            "release",
        )
        self.smoke(self.staging, self.v1)
        self.provision(self.production)
        self.journey.section("production: release v1 with a backup first")
        self.journey.manage(
            "production: release v1 with a backup first", self.production, self.v1, "release", "--backup"
        )
        self.snapshot("after v1")
        self.build_v2()
        self.promote_v2()
        self.snapshot("after v2")
        self.compare()
        self.roll_back_production()

    def build_v1(self) -> None:
        j = self.journey
        j.section("code v1: add a tool (a copy of the project; the real one is not touched)")
        j.action(
            "copy the project and add the Expense Report tool",
            f"cp -r {PROJECT_ROOT} {self.v1.path} && edit tools/catalogue.py",
            lambda: (copy_project(self.v1.path), add_tool(self.v1.path))[1],
        )
        j.manage(
            "build v1: collect static files (Heroku does this when it builds the slug)",
            self.local,
            self.v1,
            "collectstatic",
            "--noinput",
            "--verbosity",
            "0",
        )

    def develop_locally(self) -> None:
        j, local, v1 = self.journey, self.local, self.v1
        j.section("local: develop, grant, export the access file")
        j.manage(
            "local: migrate (the catalogue sync creates the new tool)",
            local,
            v1,
            "migrate",
            "--noinput",
            "--verbosity",
            "1",
        )
        j.manage("local: load the demo users and grants", local, v1, "load_demo")
        j.manage(
            f"local: grant {NEW_TOOL_KEY} to every active user except {EXCLUDED_USER}",
            local,
            v1,
            "shell",
            "--no-imports",
            "-c",
            GRANT_TO_ALL_EXCEPT.format(key=NEW_TOOL_KEY, excluded=EXCLUDED_USER),
        )
        j.manage("local: export the access file (the file you commit)", local, v1, "export_access")
        j.action(
            f"the access file lists {NEW_TOOL_KEY} without {EXCLUDED_USER}",
            "cat fixtures/access.json",
            lambda: self.check_access_file(v1, NEW_TOOL_KEY),
        )

    def check_access_file(self, code: CodeVersion, key: str) -> str:
        grants = grants_by_tool((code.path / "fixtures" / "access.json").read_text())
        if key not in grants:
            raise AssertionError(f"{key} is not in the access file")
        if EXCLUDED_USER in grants[key] or not grants[key]:
            raise AssertionError(f"{key} is granted to {grants[key]}")
        return describe_grants(grants)

    def provision(self, environment: Environment) -> None:
        j = self.journey
        users = {**DEMO_USERS, **(PRODUCTION_EMAIL_MISMATCH if environment.name == "production" else {})}
        j.section(f"{environment.name}: a new, empty environment with the same people")
        j.manage(
            f"{environment.name}: create the schema", environment, self.v1, "migrate", "--noinput", "--verbosity", "0"
        )
        j.manage(
            f"{environment.name}: create the users (no grants yet)",
            environment,
            self.v1,
            "shell",
            "--no-imports",
            "-c",
            CREATE_USERS.format(users=users),
        )

    def smoke(self, environment: Environment, code: CodeVersion) -> None:
        log_path = self.workdir / f"gunicorn-{environment.name}-{code.name}.log"
        with serving(environment, code, log_path, self.journey) as url:
            self.journey.manage(
                f"{environment.name}: smoke-test {code.name} over HTTP",
                environment,
                code,
                "smoke",
                "--url",
                url,
                "--expect-version",
                code.name,
            )

    def build_v2(self) -> None:
        j = self.journey
        j.section("code v2: rename the tool's key with a data migration")
        j.action(
            f"copy v1 and rename {NEW_TOOL_KEY} to {RENAMED_TOOL_KEY}",
            f"cp -r {self.v1.path} {self.v2.path} && edit tools/catalogue.py && add a RenameTool migration",
            lambda: (shutil.copytree(self.v1.path, self.v2.path, ignore=COPY_IGNORE), rename_tool(self.v2.path))[1],
        )
        j.manage(
            "build v2: collect static files", self.local, self.v2, "collectstatic", "--noinput", "--verbosity", "0"
        )

    def promote_v2(self) -> None:
        j, v2 = self.journey, self.v2
        j.section("promote v2: local → staging → production")
        j.manage("local: migrate (RenameTool moves the tool and its grants)", self.local, v2, "migrate", "--noinput")
        j.manage("local: export the access file again", self.local, v2, "export_access")
        j.action(
            f"the access file now lists {RENAMED_TOOL_KEY}",
            "git diff fixtures/access.json",
            lambda: self.check_access_file(v2, RENAMED_TOOL_KEY),
        )
        j.manage("staging: release v2", self.staging, v2, "release")
        self.smoke(self.staging, v2)
        j.manage("production: release v2 with a backup first", self.production, v2, "release", "--backup")

    def snapshot(self, moment: str) -> None:
        code = self.v1 if moment == "after v1" else self.v2
        for environment in (self.local, self.staging, self.production):
            stdout = self.journey.manage(
                f"{environment.name}: the grants {moment}",
                environment,
                code,
                "export_access",
                "--output",
                "-",
                summarise=lambda text: describe_grants(grants_by_tool(text)),
            )
            self.grants[environment.name, moment] = grants_by_tool(stdout)

    def compare(self) -> None:
        self.journey.section("what the journey shows")
        self.journey.action(
            f"{EXCLUDED_USER} has the tool in no environment, before or after the rename",
            "compare the exports",
            self.user_a_excluded,
        )
        self.journey.action(
            "the rename kept every grant, in every environment", "compare the exports", self.grants_kept_across_rename
        )
        self.journey.action(
            "a production user whose email differs from the file's was never granted",
            "compare the exports",
            self.mismatched_email_not_granted,
        )

    def user_a_excluded(self) -> str:
        lines = []
        for (environment, moment), grants in sorted(self.grants.items()):
            key = NEW_TOOL_KEY if moment == "after v1" else RENAMED_TOOL_KEY
            users = grants.get(key)
            if users is None or EXCLUDED_USER in users or not users:
                raise AssertionError(f"{environment} {moment}: {key} is granted to {users}")
            lines.append(f"{environment:<10} {moment}: {key} granted to {len(users)} users, not {EXCLUDED_USER}")
        return "\n".join(lines)

    def grants_kept_across_rename(self) -> str:
        lines = []
        for environment in ENVIRONMENT_NAMES:
            before = self.grants[environment, "after v1"][NEW_TOOL_KEY]
            after = self.grants[environment, "after v2"].get(RENAMED_TOOL_KEY)
            if after != before:
                raise AssertionError(f"{environment}: {NEW_TOOL_KEY} had {before}, {RENAMED_TOOL_KEY} has {after}")
            if NEW_TOOL_KEY in self.grants[environment, "after v2"]:
                raise AssertionError(f"{environment}: {NEW_TOOL_KEY} still exists after the rename")
            lines.append(f"{environment:<10} {NEW_TOOL_KEY} -> {RENAMED_TOOL_KEY}: {', '.join(after)}")
        return "\n".join(lines)

    def mismatched_email_not_granted(self) -> str:
        ((username, email),) = PRODUCTION_EMAIL_MISMATCH.items()
        staging_tools = sorted(key for key, users in self.grants["staging", "after v2"].items() if username in users)
        production_tools = sorted(
            key for key, users in self.grants["production", "after v2"].items() if username in users
        )
        if not staging_tools or production_tools:
            raise AssertionError(f"{username}: staging {staging_tools}, production {production_tools}")
        return (
            f"{username} <{DEMO_USERS[username]}> in staging: {', '.join(staging_tools)}\n"
            f"{username} <{email}> in production: nothing (the file's {username} is {DEMO_USERS[username]})"
        )

    def roll_back_production(self) -> None:
        j, production, v1 = self.journey, self.production, self.v1
        j.section("roll production back to v1: the database from the backup taken before v2, and the v1 code")
        j.manage("production: the backups it has", production, self.v2, "backup", "--list")
        j.manage(
            "production: what a rollback would restore (dry run, nothing changes)",
            production,
            self.v2,
            "rollback",
            "--dry-run",
        )
        j.manage(
            "production: restore the newest backup (a safety backup of the current state first)",
            production,
            self.v2,
            "rollback",
            "--noinput",
            "--confirm",
            "production",
        )
        j.manage(
            "production: verify with the v1 code (heroku rollback restores the code)", production, v1, "verify_deploy"
        )
        stdout = j.manage(
            "production: the grants after the rollback",
            production,
            v1,
            "export_access",
            "--output",
            "-",
            summarise=lambda text: describe_grants(grants_by_tool(text)),
        )
        j.action(
            "production holds exactly what it held after v1",
            "compare the exports",
            lambda: self.same_as_after_v1(grants_by_tool(stdout)),
        )

    def same_as_after_v1(self, grants: dict[str, list[str]]) -> str:
        expected = self.grants["production", "after v1"]
        if grants != expected:
            raise AssertionError(
                f"after the rollback:\n{describe_grants(grants)}\nafter v1:\n{describe_grants(expected)}"
            )
        return describe_grants(grants)


def summary(journey: Journey, failure: Exception | None) -> str:
    lines = ["", "=== summary"]
    lines += [
        f"{record.number:>3}. exit {record.exit_code}  {record.seconds:5.1f} s  {record.title}"
        for record in journey.records
    ]
    if failure is None:
        lines.append(f"All {len(journey.records)} steps passed.")
    else:
        lines.append(f"FAILED: {failure}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=textwrap.dedent(__doc__.split("\n\n", 1)[1]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="A new or empty directory for the code copies, databases and "
        "backups; it is kept afterwards (default: a temporary directory, removed at the end).",
    )
    parser.add_argument("--keep", action="store_true", help="Keep the work directory and the PostgreSQL databases.")
    options = parser.parse_args(argv)

    journey = Journey()
    if options.workdir is not None and options.workdir.exists() and any(options.workdir.iterdir()):
        parser.error(f"--workdir {options.workdir} is not empty")
    temporary = options.workdir is None
    workdir = (options.workdir or Path(tempfile.mkdtemp(prefix="omnitool-demo-"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    server_url = os.environ.get("DEMO_DATABASE_URL", "").strip()
    server: PostgresqlServer | None = None
    failure: Exception | None = None
    journey.say(f"OmniTool promotion demo in {workdir}")
    try:
        if server_url:
            server = PostgresqlServer.from_url(server_url)
            journey.action("create three PostgreSQL databases", f"createdb on {server.shown()}", server.create)
            environments = server.environments(workdir / "backups")
        else:
            environments = sqlite_environments(workdir / "databases")
            journey.action(
                "three SQLite databases",
                f"ls {workdir / 'databases'}",
                lambda: "\n".join(environment.database_url for environment in environments),
            )
        PromotionDemo(workdir, environments, journey).run()
    except (DemoFailure, ValueError) as error:
        failure = error
    finally:
        if not options.keep:
            if server is not None:
                try:
                    server.drop()
                except Exception as error:  # report, but the demo's own result stands
                    journey.say(f"could not drop the demo databases: {error}")
            if temporary:
                shutil.rmtree(workdir, ignore_errors=True)
    journey.say(summary(journey, failure))
    return 0 if failure is None else 1


if __name__ == "__main__":
    sys.exit(main())
