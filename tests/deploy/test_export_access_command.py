"""`manage.py export_access` (deploy/management/commands/export_access.py)."""
import hashlib
import io
import json

import pytest
from django.core.management import CommandError, call_command

from deploy.access_file import export_access_document
from tests.conftest import grant_pairs
from tests.deploy.access_support import TerminalStringIO, run_command

pytestmark = pytest.mark.django_db


def run(*args, stderr=None, **options) -> str:
    return run_command("export_access", *args, stderr=stderr, **options)


def test_export__writes_the_access_file_and_says_so(demo_data, tmp_path):
    path = tmp_path / "access.json"

    output = run(output=str(path))

    assert path.read_bytes() == export_access_document()
    assert output == f"Exported 3 tools and 10 grants ({path.stat().st_size:,} bytes) to {path}.\n"


def test_export__writes_settings_access_file_by_default(demo_data, tmp_path, settings):
    settings.ACCESS_FILE = tmp_path / "default.json"

    run()

    assert settings.ACCESS_FILE.read_bytes() == export_access_document()


def test_export__twice_is_byte_identical(demo_data, tmp_path):
    run(output=str(tmp_path / "first.json"))
    run(output=str(tmp_path / "second.json"))

    assert (tmp_path / "first.json").read_bytes() == (tmp_path / "second.json").read_bytes()


def test_export__dash_writes_the_file_to_stdout(demo_data):
    assert run(output="-").encode() == export_access_document()


def test_export__env_names_the_environment_in_the_file(demo_data):
    assert json.loads(run(output="-", env="staging"))["environment"] == "staging"


def test_export__env_must_be_a_known_environment(demo_data):
    with pytest.raises(CommandError, match="invalid choice: 'qa'"):
        run("--output", "-", "--env", "qa")


def test_export__format_json_describes_what_was_written(demo_data, tmp_path):
    path = tmp_path / "access.json"

    document = json.loads(run(output=str(path), format="json"))

    assert document == {
        "output": str(path),
        "environment": "local",
        "tools": 3,
        "grants": 10,
        "bytes": path.stat().st_size,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "left_out": {},
    }


def test_export__into_a_missing_directory_is_one_clear_line(demo_data, tmp_path):
    with pytest.raises(CommandError) as raised:
        run(output=str(tmp_path / "nowhere" / "access.json"))

    assert str(raised.value) == (
        f"{tmp_path / 'nowhere' / 'access.json'}: the directory {tmp_path / 'nowhere'} does not exist; nothing was written."
    )


def test_export__then_import_into_an_empty_table_round_trips(demo_data, tmp_path):
    path = tmp_path / "access.json"
    run(output=str(path))
    expected = grant_pairs()
    from tools.models import ToolAccess

    ToolAccess.objects.all().delete()
    call_command("import_access", str(path), stdout=io.StringIO())

    assert grant_pairs() == expected
    run(output=str(tmp_path / "again.json"))
    assert (tmp_path / "again.json").read_bytes() == path.read_bytes()


def test_export__shows_progress_only_on_a_terminal(demo_data, tmp_path):
    on_terminal, not_terminal = TerminalStringIO(), io.StringIO()

    run(output=str(tmp_path / "a.json"), stderr=on_terminal)
    run(output=str(tmp_path / "b.json"), stderr=not_terminal)

    assert "Exporting grants: 10" in on_terminal.getvalue()
    assert not_terminal.getvalue() == ""


def test_export__says_which_grants_on_tools_outside_the_catalogue_it_leaves_out(demo_data, make_tool, grant, tmp_path):
    from django.contrib.auth import get_user_model

    stray = make_tool("legacy-thing", "Legacy Thing")
    grant(get_user_model().objects.get(username="alice"), stray)
    stderr = io.StringIO()

    run(output=str(tmp_path / "access.json"), stderr=stderr)

    assert stderr.getvalue() == (
        "Left out 1 grant on tools not in the catalogue: legacy-thing (1). "
        "A RenameTool or RemoveTool migration resolves them; verify_deploy lists them.\n"
    )
    assert b"legacy-thing" not in (tmp_path / "access.json").read_bytes()
