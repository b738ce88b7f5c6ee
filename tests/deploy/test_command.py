"""What every deploy command shares (deploy/command.py), through real processes:
user errors are one line and exit 1, and --format json always prints one document."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def manage(*args: str, database_url: str, stdin=subprocess.DEVNULL, **environment) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url, "OMNITOOL_ENV": "local", **environment}
    env.pop("SECRET_KEY", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, stdin=stdin
    )


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    result = manage("migrate", "-v", "0", database_url=url)
    assert result.returncode == 0, result.stderr
    return url


@pytest.fixture
def unreachable_url() -> str:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgres://postgres@127.0.0.1:{port}/nothing"


def test_a_mistyped_flag_is_one_line_and_exit_1_not_argparse_exit_2(sqlite_url):
    result = manage("import_access", "--detailed-exitcode", "--mode", "mirorr", database_url=sqlite_url)

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "CommandError: argument --mode: invalid choice: 'mirorr' (choose from 'merge', 'mirror'); "
        "see 'manage.py import_access --help'."
    ]


@pytest.mark.parametrize("command", [["export_access", "--output", "-"], ["import_access", "--dry-run"]])
def test_an_unreachable_database_is_one_line_without_traceback(unreachable_url, command):
    result = manage(*command, database_url=unreachable_url)

    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("CommandError: cannot use the database: ")


def test_release_with_an_unreachable_database_fails_its_step_without_traceback(unreachable_url):
    result = manage("release", database_url=unreachable_url)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert "FAILED: database error: " in result.stdout


def test_json_format_prints_one_document_also_for_an_error(sqlite_url, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "omnitool.access/v2", "environment": "local", "tools": []}')

    result = manage("import_access", str(bad), "--format", "json", database_url=sqlite_url)

    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert "schema" in document["error"]


def test_export_to_a_closed_pipe_ends_quietly(sqlite_url):
    command = [sys.executable, "manage.py", "export_access", "--output", "-"]
    env = {**os.environ, "DATABASE_URL": sqlite_url, "OMNITOOL_ENV": "local"}
    export = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    export.stdout.read(1)
    export.stdout.close()  # the reader goes away, as `| head -c 1` would
    stderr = export.stderr.read().decode()
    export.wait(timeout=60)

    assert "Traceback" not in stderr


def test_export_to_a_directory_is_a_clear_error(sqlite_url, tmp_path):
    result = manage("export_access", "--output", str(tmp_path), database_url=sqlite_url)

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"CommandError: {tmp_path}: cannot write the access file (Is a directory); nothing was written."
    ]
