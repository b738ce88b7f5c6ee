"""export_access and import_access as real `manage.py` processes: exit codes,
stderr, and the seed's scenario across two separate databases."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

MANAGE = Path(settings.BASE_DIR) / "manage.py"
SAME_PEOPLE_ANOTHER_ORDER = (
    "from django.contrib.auth import get_user_model; User = get_user_model(); "
    "[User.objects.create_user(name, f'{name}@example.com') for name in "
    "('user_a', 'dave', 'carol', 'bob', 'alice', 'admin')]"
)
GRANTS_AS_LINES = (
    "from tools.models import ToolAccess; "
    "print(*sorted(f'{key} {name}' for key, name in ToolAccess.objects.values_list('tool__key', 'user__username')), sep='\\n')"
)


def manage(database: Path, *args: str) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "OMNITOOL_ENV": "local",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return subprocess.run(
        [sys.executable, str(MANAGE), *args], env=environment, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def environments(tmp_path_factory):
    """A dev database with the demo data, and a staging database with the same people and no grants."""
    directory = tmp_path_factory.mktemp("environments")
    dev, staging = directory / "dev.sqlite3", directory / "staging.sqlite3"
    assert manage(dev, "migrate", "--verbosity", "0").returncode == 0
    staging.write_bytes(dev.read_bytes())
    assert manage(dev, "load_demo").returncode == 0
    assert manage(staging, "shell", "-c", SAME_PEOPLE_ANOTHER_ORDER).returncode == 0
    return dev, staging


@pytest.fixture
def staging(environments, tmp_path):
    """A fresh copy of the staging database for one test."""
    copy = tmp_path / "staging.sqlite3"
    copy.write_bytes(environments[1].read_bytes())
    return copy


def test_seed_scenario__user_a_stays_excluded_in_another_database(environments, staging, tmp_path):
    dev, _ = environments
    access_file = tmp_path / "access.json"
    assert manage(dev, "export_access", "--output", str(access_file)).returncode == 0

    first = manage(staging, "import_access", str(access_file), "--detailed-exitcode")
    second = manage(staging, "import_access", str(access_file), "--detailed-exitcode")

    assert (first.returncode, second.returncode) == (2, 0)
    assert second.stdout.splitlines()[-1] == "Nothing to change: the grants already match the file."
    invoice_users = [line.split()[1] for line in manage(staging, "shell", "-c", GRANTS_AS_LINES).stdout.splitlines() if line.startswith("invoice-generator ")]
    assert invoice_users == ["admin", "alice", "bob", "carol", "dave"]
    assert manage(staging, "export_access", "--output", "-").stdout == access_file.read_text()


def test_bad_input_exits_1_with_one_line_on_stderr_and_the_error_as_json_on_stdout(staging, tmp_path):
    access_file = tmp_path / "access.json"
    access_file.write_text('{"schema": "omnitool.access/v1",\n  "environment": 3,\n  "tools": []}\n')

    result = manage(staging, "import_access", str(access_file), "--format", "json")

    message = f"{access_file}: environment: expected a string, found a number. Nothing was written."
    assert result.returncode == 1
    assert json.loads(result.stdout) == {"ok": False, "error": message}
    assert result.stderr == f"CommandError: {message}\n"


def test_stdin_is_read_with_a_dash(environments, staging):
    exported = manage(environments[0], "export_access", "--output", "-").stdout
    environment = {**os.environ, "DATABASE_URL": f"sqlite:///{staging}", "OMNITOOL_ENV": "local"}

    result = subprocess.run(
        [sys.executable, str(MANAGE), "import_access", "-", "--format", "json"],
        input=exported, env=environment, capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert '"status": "applied"' in result.stdout
    assert '"source": "<stdin>"' in result.stdout
