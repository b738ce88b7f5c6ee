"""`manage.py import_access` (deploy/management/commands/import_access.py), through
call_command; tests/deploy/test_access_commands_subprocess.py runs the real process."""
import io
import json

import pytest
from django.core.management import CommandError, call_command

from deploy.models import AccessSnapshot
from tests.conftest import grant_pairs
from tests.deploy.access_support import TerminalStringIO, run_command, access_bytes, access_document, database_fingerprint, write_access_file

pytestmark = pytest.mark.django_db


def run(*args, stderr=None, **options) -> str:
    return run_command("import_access", *args, stderr=stderr, **options)


@pytest.fixture
def people(make_user):
    return {name: make_user(name) for name in ("alice", "bob", "carol")}


@pytest.fixture
def access_path(tmp_path):
    return tmp_path / "access.json"


def test_import__adds_the_files_grants_and_says_so(people, access_path):
    write_access_file(access_path, {"invoice-generator": ["alice", "bob"]})

    output = run(str(access_path))

    snapshot = AccessSnapshot.objects.get()
    assert output.splitlines()[-1] == f"Imported: 2 grants added, 0 removed; access snapshot #{snapshot.pk} stored first."
    assert grant_pairs() == {("alice", "invoice-generator"), ("bob", "invoice-generator")}


def test_import__reads_settings_access_file_by_default(people, access_path, settings):
    settings.ACCESS_FILE = write_access_file(access_path, {"team-directory": ["carol"]})

    run()

    assert grant_pairs() == {("carol", "team-directory")}


def test_import__dry_run_reports_the_plan_exactly_and_writes_nothing(people, catalogue_tools, grant, access_path):
    grant(people["carol"], catalogue_tools["invoice-generator"])
    grant(people["alice"], catalogue_tools["team-directory"])
    write_access_file(
        access_path,
        {
            "invoice-generator": ["alice", ("bob", "bob@elsewhere.example"), "zoe"],
            "team-directory": ["alice"],
            "retired-tool": ["alice"],
        },
    )
    before = database_fingerprint()

    output = run(str(access_path), dry_run=True)

    assert output.splitlines() == [
        f"Access plan (merge) from {access_path}, exported from local:",
        "  grants to add             1",
        "  grants to remove          0",
        "  unchanged                 1",
        "  unmatched users           2",
        "  unknown tools             1",
        "Unmatched user: bob <bob@elsewhere.example>: email differs, skipped on invoice-generator",
        "Unmatched user: zoe <zoe@example.com>: unknown user, skipped on invoice-generator",
        "Unknown tool: retired-tool (Retired Tool): not in this database, 1 grant skipped",
        "Dry run: nothing was written.",
    ]
    assert database_fingerprint() == before


def test_import__verbosity_2_lists_each_tool_and_3_each_grant(people, catalogue_tools, grant, access_path):
    grant(people["carol"], catalogue_tools["team-directory"])
    write_access_file(access_path, {"team-directory": ["alice", "bob"], "invoice-generator": []})

    output = run(str(access_path), mode="mirror", dry_run=True, verbosity=3)

    assert output.splitlines()[6:11] == [
        "  invoice-generator: +0 -0 =0",
        "  team-directory: +2 -1 =0",
        "    + alice",
        "    + bob",
        "    - carol",
    ]


def test_import__verbosity_0_prints_nothing(people, access_path):
    write_access_file(access_path, {"invoice-generator": ["alice"]})

    assert run(str(access_path), verbosity=0) == ""
    assert grant_pairs() == {("alice", "invoice-generator")}


def test_import__a_second_run_changes_nothing(people, access_path):
    write_access_file(access_path, {"invoice-generator": ["alice", "bob"]})
    run(str(access_path))
    before = database_fingerprint()

    output = run(str(access_path))

    assert output.splitlines()[-1] == "Nothing to change: the grants already match the file."
    assert database_fingerprint() == before


def test_import__merge_keeps_grants_the_file_lacks(people, catalogue_tools, grant, access_path):
    grant(people["carol"], catalogue_tools["invoice-generator"])
    write_access_file(access_path, {"invoice-generator": ["alice"]})

    run(str(access_path))

    assert grant_pairs() == {("alice", "invoice-generator"), ("carol", "invoice-generator")}


def test_import__mirror_removes_grants_the_file_lacks(people, catalogue_tools, grant, access_path):
    grant(people["carol"], catalogue_tools["invoice-generator"])
    write_access_file(access_path, {"invoice-generator": ["alice"]})

    output = run(str(access_path), mode="mirror")

    assert grant_pairs() == {("alice", "invoice-generator")}
    assert "Imported: 1 grant added, 1 removed" in output


def test_import__mirror_in_production_without_confirmation_is_refused(people, catalogue_tools, grant, access_path, settings):
    settings.OMNITOOL_ENV = "production"
    grant(people["carol"], catalogue_tools["invoice-generator"])
    write_access_file(access_path, {"invoice-generator": ["alice"]})
    before = database_fingerprint()

    with pytest.raises(CommandError) as raised:
        run(str(access_path), mode="mirror", interactive=False)

    assert str(raised.value) == (
        "Mirror import removing 1 grant in production needs confirmation: pass --noinput --confirm production; "
        "nothing was changed."
    )
    assert database_fingerprint() == before


def test_import__mirror_in_production_with_confirm_production_applies(people, catalogue_tools, grant, access_path, settings):
    settings.OMNITOOL_ENV = "production"
    grant(people["carol"], catalogue_tools["invoice-generator"])
    write_access_file(access_path, {"invoice-generator": ["alice"]})

    run(str(access_path), mode="mirror", interactive=False, confirm="production")

    assert grant_pairs() == {("alice", "invoice-generator")}


def test_import__merge_in_production_needs_no_confirmation(people, access_path, settings):
    settings.OMNITOOL_ENV = "production"
    write_access_file(access_path, {"invoice-generator": ["alice"]})

    run(str(access_path), interactive=False)

    assert grant_pairs() == {("alice", "invoice-generator")}


def test_import__mismatched_email_is_never_granted(people, access_path):
    write_access_file(access_path, {"invoice-generator": [("alice", "alice@elsewhere.example"), "bob"]})

    output = run(str(access_path))

    assert grant_pairs() == {("bob", "invoice-generator")}
    assert "Unmatched user: alice <alice@elsewhere.example>: email differs, skipped on invoice-generator" in output


def test_import__strict_fails_on_unmatched_users_and_writes_nothing(people, access_path):
    write_access_file(access_path, {"invoice-generator": ["alice", "zoe"]})
    before = database_fingerprint()

    with pytest.raises(CommandError) as raised:
        run(str(access_path), strict=True)

    assert str(raised.value) == "--strict: the file names 1 unmatched user and 0 unknown tools; nothing was written."
    assert database_fingerprint() == before


def test_import__strict_passes_when_everything_matches(people, access_path):
    write_access_file(access_path, {"invoice-generator": ["alice"]})

    run(str(access_path), strict=True)

    assert grant_pairs() == {("alice", "invoice-generator")}


def test_import__detailed_exitcode_is_2_when_the_plan_had_changes(people, access_path):
    write_access_file(access_path, {"invoice-generator": ["alice"]})

    with pytest.raises(SystemExit) as raised:
        run(str(access_path), detailed_exitcode=True)

    assert raised.value.code == 2
    assert grant_pairs() == {("alice", "invoice-generator")}


def test_import__detailed_exitcode_is_2_for_a_dry_run_with_changes(people, access_path):
    write_access_file(access_path, {"invoice-generator": ["alice"]})

    with pytest.raises(SystemExit) as raised:
        run(str(access_path), detailed_exitcode=True, dry_run=True)

    assert raised.value.code == 2
    assert grant_pairs() == set()


def test_import__detailed_exitcode_is_0_without_changes(people, access_path):
    write_access_file(access_path, {"invoice-generator": []})

    run(str(access_path), detailed_exitcode=True)  # returns: no SystemExit


def test_import__detailed_exitcode_is_0_when_another_import_applied_the_changes_first(
    people, access_path, monkeypatch
):
    """The plan printed had changes, but an import that ran between planning and
    applying wrote them: this run wrote nothing, so it reports no changes."""
    import deploy.management.commands.import_access as command_module

    real_apply_plan = command_module.apply_plan

    def another_import_runs_first(plan, **options):
        real_apply_plan(plan)  # the other import commits the same grants
        return real_apply_plan(plan, **options)

    monkeypatch.setattr(command_module, "apply_plan", another_import_runs_first)
    write_access_file(access_path, {"invoice-generator": ["alice"]})

    output = run(str(access_path), detailed_exitcode=True)  # returns: no SystemExit

    assert "Imported: 0 grants added, 0 removed." in output
    assert grant_pairs() == {("alice", "invoice-generator")}


def test_import__format_json_prints_one_document(people, catalogue_tools, grant, access_path):
    grant(people["carol"], catalogue_tools["invoice-generator"])
    write_access_file(access_path, {"invoice-generator": ["alice", "zoe"]})

    document = json.loads(run(str(access_path), format="json"))

    assert document == {
        "status": "applied",
        "dry_run": False,
        "strict": False,
        "added": 1,
        "removed": 0,
        "snapshot": AccessSnapshot.objects.get().pk,
        "plan": {
            "mode": "merge",
            "source": str(access_path),
            "environment": "local",
            "has_changes": True,
            "summary": {"to_add": 1, "to_remove": 0, "unchanged": 0, "unmatched_users": 1, "unknown_tools": 0},
            "tools": [{"key": "invoice-generator", "name": "Invoice Generator", "to_add": ["alice"], "to_remove": [], "unchanged": 0}],
            "unmatched_users": [{"username": "zoe", "email": "zoe@example.com", "reason": "unknown user", "tools": ["invoice-generator"]}],
            "unknown_tools": [],
        },
    }


BAD_INPUTS = {
    "not_json": (b'{"schema": "omnitool.access/v1",\n  "tools": [}', "{path}:2:13: not valid JSON: Expecting value."),
    "wrong_schema": (
        access_bytes(access_document({}) | {"schema": "something/else"}),
        "{path}: schema: expected 'omnitool.access/v1', found 'something/else'.",
    ),
    "missing_field": (
        json.dumps({"schema": "omnitool.access/v1", "environment": "local", "tools": [{"key": "x", "name": "X"}]}).encode(),
        "{path}: tools[0]: missing field 'users'.",
    ),
    "wrong_type": (
        json.dumps({"schema": "omnitool.access/v1", "environment": "local", "tools": [{"key": "x", "name": "X", "users": [{"username": "alice", "email": None}]}]}).encode(),
        "{path}: tools[0].users[0].email: expected a string, found null.",
    ),
    "duplicate_tool": (
        access_bytes(access_document({"invoice-generator": ["alice"]}) | {"tools": [{"key": "invoice-generator", "name": "A", "users": []}] * 2}),
        "{path}: tools[1].key: duplicate tool 'invoice-generator' (also at tools[0]).",
    ),
    "duplicate_user": (
        access_bytes(access_document({}) | {"tools": [{"key": "invoice-generator", "name": "A", "users": [{"username": "alice", "email": "a@x.example"}] * 2}]}),
        "{path}: tools[0].users[1].username: duplicate user 'alice' (also at tools[0].users[0]).",
    ),
    "non_utf8": (b'{"schema": "omnitool.access/v1", "environment": "l\xe9cal", "tools": []}', "{path}:1:51: not UTF-8 (byte 0xe9); save the file as UTF-8."),
    "binary": (b"PK\x03\x04\x14\x00\x00\x00", "{path}:1:6: binary data (a NUL byte), not a JSON access file."),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_import__bad_input_is_one_clear_line_and_writes_nothing(case, people, catalogue_tools, grant, access_path):
    grant(people["carol"], catalogue_tools["invoice-generator"])
    data, message = BAD_INPUTS[case]
    access_path.write_bytes(data)
    before = database_fingerprint()

    with pytest.raises(CommandError) as raised:
        run(str(access_path), mode="mirror")

    assert str(raised.value) == message.format(path=access_path) + " Nothing was written."
    assert database_fingerprint() == before


def test_import__a_file_over_the_size_limit_is_refused(people, access_path, settings):
    settings.ACCESS_FILE_MAX_BYTES = 64
    write_access_file(access_path, {"invoice-generator": ["alice"]})
    before = database_fingerprint()

    with pytest.raises(CommandError) as raised:
        run(str(access_path))

    size = access_path.stat().st_size
    assert str(raised.value) == (
        f"{access_path}: the file is {size:,} bytes, over the limit of 64 bytes "
        "(raise ACCESS_FILE_MAX_BYTES if it is genuine). Nothing was written."
    )
    assert database_fingerprint() == before


def test_import__shows_progress_on_a_terminal(people, access_path):
    write_access_file(access_path, {"invoice-generator": ["alice", "bob"]})
    stderr = TerminalStringIO()

    run(str(access_path), stderr=stderr)

    assert "Writing grants: 2/2 (100%)" in stderr.getvalue()


def test_import__shows_no_progress_when_stderr_is_not_a_terminal(people, access_path):
    write_access_file(access_path, {"invoice-generator": ["alice", "bob"]})
    stderr = io.StringIO()

    run(str(access_path), stderr=stderr)

    assert stderr.getvalue() == ""


def test_import__shows_no_progress_with_format_json(people, access_path):
    write_access_file(access_path, {"invoice-generator": ["alice", "bob"]})
    stderr = TerminalStringIO()

    run(str(access_path), stderr=stderr, format="json")

    assert stderr.getvalue() == ""
