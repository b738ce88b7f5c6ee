"""`make demo` (scripts/promotion_demo.py) run as a test, on the suite's database.

On the SQLite pass the demo's three environments are SQLite files; on the
PostgreSQL pass they are databases on the same server as the suite's, named
after it (<suite database>_demo_local …), which the demo drops at the end. The
demo runs once per pass (a module fixture) and each test reads one thing from
what it printed or left behind.
"""

import hashlib
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEMO = PROJECT_ROOT / "scripts" / "promotion_demo.py"
STEP_HEADER = re.compile(r"^--- (\d+)\. (.+)$", re.MULTILINE)


def run_demo(*arguments: str, database_url: str | None = None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "DEMO_DATABASE_URL"}}
    if database_url:
        env["DEMO_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, str(DEMO), *arguments], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def suite_server_url() -> str | None:
    """The PostgreSQL server of this test run, with a database prefix named after the suite's, or None on SQLite."""
    if connection.vendor != "postgresql":
        return None
    settings = connection.settings_dict
    # pytest-django renames NAME to test_<name> once a test uses the database; the prefix must not depend on order.
    name = re.sub(r"^test_", "", settings["NAME"])
    credentials = settings["USER"] + (f":{settings['PASSWORD']}" if settings["PASSWORD"] else "")
    return f"postgres://{credentials}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{name}_demo"


def project_fingerprint() -> dict[str, str]:
    """What the demo must never change in the real project: the catalogue, pages, migrations, access file."""
    paths = [PROJECT_ROOT / "tools" / "catalogue.py", PROJECT_ROOT / "fixtures" / "access.json"]
    paths += sorted((PROJECT_ROOT / "tools" / "migrations").glob("*.py"))
    paths += sorted((PROJECT_ROOT / "tools" / "pages").glob("*.py"))
    return {str(path.relative_to(PROJECT_ROOT)): hashlib.sha256(path.read_bytes()).hexdigest() for path in paths}


def step_blocks(output: str) -> dict[str, str]:
    """Step title -> its block of output (command, output lines, exit line)."""
    headers = list(STEP_HEADER.finditer(output))
    ends = [match.start() for match in headers[1:]] + [output.index("\n=== summary")]
    blocks = {match.group(2): output[match.end() : end] for match, end in zip(headers, ends, strict=True)}
    assert len(blocks) == len(headers), "two steps share a title"
    return blocks


def postgresql_databases(server_url: str, prefix: str) -> list[str]:
    from urllib.parse import urlsplit

    import psycopg2

    parts = urlsplit(server_url)
    with (
        psycopg2.connect(
            host=parts.hostname, port=parts.port, user=parts.username, password=parts.password, dbname="postgres"
        ) as database,
        database.cursor() as cursor,
    ):
        cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{prefix}%"])
        return sorted(row[0] for row in cursor.fetchall())


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One run of the whole journey; (result, work directory, fingerprints before and after)."""
    workdir = tmp_path_factory.mktemp("demo") / "work"
    before = project_fingerprint()
    result = run_demo("--workdir", str(workdir), database_url=suite_server_url())
    return result, workdir, before, project_fingerprint()


@pytest.fixture
def demo_output(demo) -> str:
    result = demo[0]
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr
    return result.stdout


@pytest.mark.slow
def test_demo__runs_every_step_of_the_journey_and_exits_0(demo_output):
    blocks = step_blocks(demo_output)

    assert len(blocks) >= 30
    assert [title for title, block in blocks.items() if "-> exit 0 (" not in block] == []
    assert f"All {len(blocks)} steps passed." in demo_output


@pytest.mark.slow
def test_demo__prints_each_step_with_its_command_and_exit_code(demo_output):
    blocks = step_blocks(demo_output)

    assert (
        "$ OMNITOOL_ENV=staging python manage.py release   [code v1]"
        in blocks["staging: release v1 (migrate, sync the catalogue, import the access file, verify)"]
    )
    assert (
        "$ OMNITOOL_ENV=production python manage.py release --backup   [code v1]"
        in blocks["production: release v1 with a backup first"]
    )
    assert (
        "$ OMNITOOL_ENV=production python manage.py rollback --noinput --confirm production   [code v2]"
        in blocks["production: restore the newest backup (a safety backup of the current state first)"]
    )
    assert all(re.search(r"^    \$ ", block, re.MULTILINE) for block in blocks.values())
    assert all(re.search(r"^    -> exit \d+ \(", block, re.MULTILINE) for block in blocks.values())


@pytest.mark.slow
def test_demo__smoke_tests_staging_on_a_live_gunicorn_for_each_release(demo_output):
    smoke_runs = re.findall(
        r"python manage\.py smoke --url http://127\.0\.0\.1:\d+ --expect-version (v\d)", demo_output
    )
    live_versions = re.findall(r"healthz \.+ ok +200 in [\d.]+ s: database ok, version (v\d)", demo_output)

    assert smoke_runs == ["v1", "v2"]
    assert live_versions == ["v1", "v2"]


@pytest.mark.slow
def test_demo__user_a_never_gets_the_new_tool_in_any_environment(demo_output):
    block = step_blocks(demo_output)["user_a has the tool in no environment, before or after the rename"]

    for environment in ("local", "staging", "production"):
        assert re.search(rf"{environment} +after v1: expense-report granted to \d users, not user_a", block)
        assert re.search(rf"{environment} +after v2: expense-claims granted to \d users, not user_a", block)


@pytest.mark.slow
def test_demo__the_rename_keeps_every_grant(demo_output):
    block = step_blocks(demo_output)["the rename kept every grant, in every environment"]

    assert "production expense-report -> expense-claims: admin, alice, bob, carol\n" in block
    assert "staging    expense-report -> expense-claims: admin, alice, bob, carol, dave\n" in block


@pytest.mark.slow
def test_demo__a_production_user_with_another_email_is_never_granted(demo_output):
    block = step_blocks(demo_output)["a production user whose email differs from the file's was never granted"]

    assert "dave <dave@contractor.example> in production: nothing" in block


@pytest.mark.slow
def test_demo__production_rollback_returns_the_grants_of_before_v2(demo, demo_output):
    blocks = step_blocks(demo_output)
    backups = sorted(path.name for path in (demo[1] / "backups" / "production").iterdir())

    assert "expense-report: admin, alice, bob, carol\n" in blocks["production holds exactly what it held after v1"]
    assert "-> exit 0" in blocks["production: verify with the v1 code (heroku rollback restores the code)"]
    assert sum("before-release" in name for name in backups) >= 2
    assert any("before-rollback" in name for name in backups)


@pytest.mark.slow
def test_demo__never_changes_the_real_catalogue_or_migrations(demo):
    _, _, before, after = demo

    assert after == before


@pytest.mark.slow
@pytest.mark.postgresql
def test_demo__on_postgresql_uses_three_databases_and_drops_them(demo_output):
    server_url = suite_server_url()
    prefix = server_url.rsplit("/", 1)[1]

    assert f"created {prefix}_local, {prefix}_staging, {prefix}_production" in demo_output
    assert f"database ....................... ok    postgresql 127.0.0.1/{prefix}_production" in demo_output
    assert postgresql_databases(server_url, prefix) == []


def test_demo__stops_at_the_first_failing_step_and_exits_1():
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = run_demo(database_url=f"postgres://postgres@127.0.0.1:{port}/omnitool_demo_unreachable")

    assert result.returncode == 1
    assert "--- 1. create three PostgreSQL databases" in result.stdout
    assert "-> exit 1 (" in result.stdout
    assert "--- 2." not in result.stdout
    assert "FAILED: step 1 (create three PostgreSQL databases) exited 1" in result.stdout


def test_demo__refuses_a_work_directory_that_is_not_empty(tmp_path):
    (tmp_path / "something").write_text("keep me")

    result = run_demo("--workdir", str(tmp_path))

    assert result.returncode == 2
    assert "is not empty" in result.stderr
    assert (tmp_path / "something").read_text() == "keep me"
