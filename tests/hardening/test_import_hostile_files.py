"""`manage.py import_access` as a subprocess, fed hostile files: it exits 1 with
one clear `CommandError` line on stderr, never a traceback, and writes nothing.

A subprocess matters here: the real stdout and stderr encode what they print
(a lone surrogate in a name, harmless in a StringIO, crashes a real stream).
"""
import hashlib
import os
import sqlite3
import subprocess
import sys

import pytest

from tests.support.gunicorn import PROJECT_ROOT, SETTINGS_VARIABLES

VALID_HEAD = b'{"schema": "omnitool.access/v1", "environment": "staging", "tools": ['
INVOICE_FOR = (
    b'{"key": "invoice-generator", "name": "Invoice Generator", "users": [{"username": %s, "email": %s}]}'
)

HOSTILE_FILES = {
    "surrogate-in-username": VALID_HEAD + INVOICE_FOR % (b'"\\ud800alice"', b'"alice@example.com"') + b"]}",
    "surrogate-in-tool-key": VALID_HEAD + b'{"key": "x\\udfff", "name": "X", "users": []}]}',
    "surrogate-in-environment": b'{"schema": "omnitool.access/v1", "environment": "\\ud83d", "tools": []}',
    "integer-of-5000-digits": VALID_HEAD.replace(b'"staging"', b"1" + b"0" * 5000) + b"]}",
    "schema-of-100k-characters": b'{"schema": "' + b"x" * 100_000 + b'", "environment": "e", "tools": []}',
    "nested-100k-deep": b"[" * 100_000 + b"]" * 100_000,
    "nul-bytes": b"\x00" * 64,
    "utf-16": '{"schema": "omnitool.access/v1", "environment": "e", "tools": []}'.encode("utf-16"),
    "latin-1": VALID_HEAD + INVOICE_FOR % (b'"al\xefce"', b'"alice@example.com"') + b"]}",
    "empty": b"",
    "truncated": VALID_HEAD + INVOICE_FOR % (b'"alice"', b'"alice@'),
    "duplicate-tool": VALID_HEAD + b'{"key": "a", "name": "A", "users": []}, {"key": "a", "name": "A", "users": []}]}',
    "wrong-schema": b'{"schema": "omnitool.access/v2", "environment": "e", "tools": []}',
}


def environment(database_path, **extra) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS_VARIABLES}
    env.update({"DATABASE_URL": f"sqlite:///{database_path}", "OMNITOOL_ENV": "local", **extra})
    return env


def manage(database_path, *arguments, input_bytes=None, **extra_env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=PROJECT_ROOT, env=environment(database_path, **extra_env), input=input_bytes,
        capture_output=True, timeout=120,
    )


def state(database_path) -> tuple:
    """Everything an import could write: the grants (checksum) and the snapshots."""
    with sqlite3.connect(database_path) as database:
        grants = database.execute("SELECT user_id, tool_id, granted_at FROM tools_toolaccess ORDER BY 1, 2").fetchall()
        snapshots = database.execute("SELECT count(*) FROM deploy_accesssnapshot").fetchone()
    return hashlib.md5(repr(grants).encode()).hexdigest(), len(grants), snapshots


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    database_path = tmp_path_factory.mktemp("hostile") / "db.sqlite3"
    for step in (["migrate", "--noinput", "--verbosity", "0"], ["load_demo", "--verbosity", "0"]):
        result = manage(database_path, *step)
        assert result.returncode == 0, result.stderr.decode()
    return database_path


def assert_refused_in_one_line(result: subprocess.CompletedProcess) -> str:
    stderr = result.stderr.decode("utf-8", "replace")
    assert "Traceback" not in stderr, stderr[-3000:]
    assert result.returncode == 1, f"exit {result.returncode}:\n{stderr[-2000:]}"
    error_lines = [line for line in stderr.splitlines() if line.startswith("CommandError: ")]
    assert len(error_lines) == 1, stderr[-2000:]
    assert len(error_lines[0]) <= 600, f"a {len(error_lines[0])}-character error line"
    return error_lines[0]


@pytest.mark.parametrize("name", sorted(HOSTILE_FILES))
def test_import_access__hostile_file_is_one_line_error_and_writes_nothing(site, tmp_path, name):
    source = tmp_path / f"{name}.json"
    source.write_bytes(HOSTILE_FILES[name])
    before = state(site)

    result = manage(site, "import_access", str(source), "--noinput")

    line = assert_refused_in_one_line(result)
    assert str(source) in line
    assert state(site) == before


@pytest.mark.parametrize("name", ["surrogate-in-username", "nul-bytes", "integer-of-5000-digits"])
def test_import_access__hostile_stdin_is_one_line_error_and_writes_nothing(site, name):
    before = state(site)

    result = manage(site, "import_access", "-", "--noinput", input_bytes=HOSTILE_FILES[name])

    assert "<stdin>" in assert_refused_in_one_line(result)
    assert state(site) == before


def test_import_access__file_over_the_size_limit_is_refused_unread(site, tmp_path):
    source = tmp_path / "big.json"
    source.write_bytes(b" " * 2048)
    before = state(site)

    result = manage(site, "import_access", str(source), "--noinput", ACCESS_FILE_MAX_BYTES="1024")

    assert "over the limit of 1,024 bytes" in assert_refused_in_one_line(result)
    assert state(site) == before


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_import_access__unreadable_path_is_refused(site, tmp_path, kind):
    path = tmp_path / "nothing-here.json"
    if kind == "directory":
        path.mkdir()

    result = manage(site, "import_access", str(path), "--noinput")

    assert str(path) in assert_refused_in_one_line(result)


def test_import_access__valid_file_is_imported(site, tmp_path):
    # The control: the same harness imports a good file, so the refusals above are the files' doing.
    source = tmp_path / "good.json"
    source.write_bytes(VALID_HEAD + INVOICE_FOR % (b'"user_a"', b'"USER_A@example.com"') + b"]}")
    grants_before = state(site)[1]

    result = manage(site, "import_access", str(source), "--noinput")

    assert result.returncode == 0, result.stderr.decode()
    assert state(site)[1] == grants_before + 1
