"""Reading, validating and exporting access files (deploy/access_file.py)."""
import json
from pathlib import Path

import pytest
from django.conf import settings

from deploy.access_file import (
    ACCESS_SCHEMA,
    AccessFile,
    AccessFileError,
    AccessFileTool,
    AccessFileUser,
    export_access_document,
    parse_access_file,
    read_access_file,
)
from tests.deploy.access_support import access_bytes, access_document
from tools.catalogue import CATALOGUE
from tools.models import ToolAccess

FIXTURE = Path(settings.BASE_DIR) / "fixtures" / "access.json"


def error_of(data: bytes, **kwargs) -> str:
    with pytest.raises(AccessFileError) as raised:
        parse_access_file(data, source="access.json", **kwargs)
    message = str(raised.value)
    assert "\n" not in message
    return message


def valid_document() -> dict:
    return access_document({"invoice-generator": ["alice", "bob"], "team-directory": []})


# --- reading -----------------------------------------------------------------


def test_parse__returns_tools_and_users_in_file_order():
    access_file = parse_access_file(access_bytes(valid_document()), source="access.json")

    assert access_file == AccessFile(
        environment="local",
        source="access.json",
        tools=(
            AccessFileTool(
                "invoice-generator",
                "Invoice Generator",
                (AccessFileUser("alice", "alice@example.com"), AccessFileUser("bob", "bob@example.com")),
            ),
            AccessFileTool("team-directory", "Team Directory", ()),
        ),
    )


def test_parse__accepts_any_key_order_and_compact_json():
    document = valid_document()
    document["tools"][0]["users"][0] = {"email": "alice@example.com", "username": "alice"}
    compact = json.dumps({"tools": document["tools"], "environment": "staging", "schema": ACCESS_SCHEMA}).encode()

    access_file = parse_access_file(compact)

    assert access_file.environment == "staging"
    assert access_file.tools[0].users[0] == AccessFileUser("alice", "alice@example.com")


def test_parse__shares_one_object_per_distinct_user_across_tools():
    document = access_document({"a-tool": ["alice"], "b-tool": ["alice"]})

    access_file = parse_access_file(access_bytes(document))

    assert access_file.tools[0].users[0] is access_file.tools[1].users[0]


def test_parse__not_json_names_line_and_column():
    assert error_of(b'{\n  "schema": ,\n}') == "access.json:2:13: not valid JSON: Expecting value."


def test_parse__wrong_schema_is_named():
    document = valid_document() | {"schema": "omnitool.access/v2"}

    assert error_of(access_bytes(document)) == (
        "access.json: schema: expected 'omnitool.access/v1', found 'omnitool.access/v2'."
    )


def test_parse__a_json_array_is_not_an_access_file():
    assert error_of(b"[1, 2]") == (
        'access.json: not an access file: expected a JSON object with "schema": "omnitool.access/v1", '
        "found an array."
    )


def test_parse__missing_top_level_field_is_named():
    document = valid_document()
    del document["environment"]

    assert error_of(access_bytes(document)) == "access.json: $: missing field 'environment'."


def test_parse__missing_tool_field_names_its_json_path():
    document = valid_document()
    del document["tools"][1]["users"]

    assert error_of(access_bytes(document)) == "access.json: tools[1]: missing field 'users'."


def test_parse__missing_user_field_names_its_json_path():
    document = valid_document()
    del document["tools"][0]["users"][1]["email"]

    assert error_of(access_bytes(document)) == "access.json: tools[0].users[1]: missing field 'email'."


def test_parse__wrong_type_names_its_json_path():
    document = valid_document()
    document["tools"][0]["users"][0]["email"] = 42

    assert error_of(access_bytes(document)) == (
        "access.json: tools[0].users[0].email: expected a string, found a number."
    )


def test_parse__tools_must_be_an_array():
    document = valid_document() | {"tools": {"invoice-generator": []}}

    assert error_of(access_bytes(document)) == "access.json: tools: expected an array, found an object."


def test_parse__empty_username_is_refused():
    document = valid_document()
    document["tools"][0]["users"][1]["username"] = " "

    assert error_of(access_bytes(document)) == "access.json: tools[0].users[1].username: must not be empty."


def test_parse__a_lone_surrogate_escape_is_refused():
    data = access_bytes(valid_document()).replace(b'"bob@example.com"', b'"bob\\ud800@example.com"')

    assert error_of(data) == (
        "access.json: tools[0].users[1].email: not valid Unicode (a lone surrogate such as \\ud800)."
    )


def test_parse__a_long_value_is_quoted_cut_short():
    document = valid_document() | {"schema": "x" * 500}

    assert error_of(access_bytes(document)) == (
        f"access.json: schema: expected 'omnitool.access/v1', found '{'x' * 58}…."
    )


def test_parse__unexpected_field_is_refused():
    document = valid_document()
    document["tools"][1]["user"] = []

    assert error_of(access_bytes(document)) == (
        "access.json: tools[1]: unexpected field 'user' (allowed: key, name, users)."
    )


def test_parse__a_field_given_twice_is_refused():
    data = access_bytes(valid_document()).replace(b'"key": "team-directory",', b'"key": "team-directory", "key": "x",')

    assert error_of(data) == "access.json: tools[1]: the field 'key' appears twice."


def test_parse__duplicate_tool_names_both_places():
    document = valid_document()
    document["tools"].append(dict(document["tools"][0]))

    assert error_of(access_bytes(document)) == (
        "access.json: tools[2].key: duplicate tool 'invoice-generator' (also at tools[0])."
    )


def test_parse__duplicate_user_names_both_places():
    document = valid_document()
    document["tools"][0]["users"].append({"username": "alice", "email": "other@example.com"})

    assert error_of(access_bytes(document)) == (
        "access.json: tools[0].users[2].username: duplicate user 'alice' (also at tools[0].users[0])."
    )


def test_parse__non_utf8_names_line_and_column():
    data = access_bytes(valid_document()).replace(b'"Team Directory"', b'"Team Direct\xf6ry"')
    line = data[: data.index(b"\xf6")].count(b"\n") + 1

    assert error_of(data) == f"access.json:{line}:27: not UTF-8 (byte 0xf6); save the file as UTF-8."


def test_parse__binary_data_is_refused():
    assert error_of(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR") == (
        "access.json:3:1: binary data (a NUL byte), not a JSON access file."
    )


def test_parse__empty_file_is_refused():
    assert error_of(b"  \n") == "access.json: the file is empty; expected a JSON access file (omnitool.access/v1)."


def test_parse__over_the_size_limit_is_refused():
    data = access_bytes(valid_document())

    assert error_of(data, max_bytes=100) == (
        f"access.json: the file is {len(data):,} bytes, over the limit of 100 bytes "
        "(raise ACCESS_FILE_MAX_BYTES if it is genuine)."
    )


def test_parse__a_utf8_byte_order_mark_is_accepted():
    access_file = parse_access_file(b"\xef\xbb\xbf" + access_bytes(valid_document()))

    assert len(access_file.tools) == 2


def test_read__a_file_over_the_setting_is_refused_unread(tmp_path, settings):
    settings.ACCESS_FILE_MAX_BYTES = 10
    path = tmp_path / "access.json"
    path.write_bytes(access_bytes(valid_document()))

    with pytest.raises(AccessFileError, match=rf"^{path}: the file is [\d,]+ bytes, over the limit of 10 bytes"):
        read_access_file(path)


def test_read__a_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(AccessFileError) as raised:
        read_access_file(tmp_path / "nope.json")

    assert str(raised.value) == f"{tmp_path / 'nope.json'}: no such file; export one with `manage.py export_access`."


# --- exporting -----------------------------------------------------------------


@pytest.mark.django_db
def test_export__the_committed_fixture_is_what_the_demo_data_exports(demo_data):
    assert export_access_document(environment="local") == FIXTURE.read_bytes()


@pytest.mark.django_db
def test_export__is_byte_identical_twice(demo_data):
    assert export_access_document() == export_access_document()


@pytest.mark.django_db
def test_export__equals_json_dumps_with_sorted_keys_and_two_space_indent(make_user, catalogue_tools, grant):
    for username in ("zed", "Émile", "Bob", "alice"):
        grant(make_user(username), catalogue_tools["team-directory"])

    document = export_access_document(environment="staging")

    expected = access_document(
        {"team-directory": ["Bob", "alice", "zed", "Émile"], "invoice-generator": [], "email-templates": []},
        environment="staging",
        names={tool.key: tool.name for tool in CATALOGUE},
    )
    assert document == access_bytes(expected)
    assert document.endswith(b"}\n") and "Émile".encode() in document


@pytest.mark.django_db
def test_export__lists_every_catalogue_tool_even_without_users():
    document = json.loads(export_access_document())

    assert [tool["key"] for tool in document["tools"]] == sorted(tool.key for tool in CATALOGUE)
    assert all(tool["users"] == [] for tool in document["tools"])


@pytest.mark.django_db
def test_export__leaves_out_tools_the_catalogue_lacks(make_user, make_tool, grant):
    grant(make_user("alice"), make_tool("legacy-tool"))

    document = json.loads(export_access_document())

    assert "legacy-tool" not in [tool["key"] for tool in document["tools"]]


@pytest.mark.django_db
def test_export__with_all_database_tools_includes_tools_the_catalogue_lacks(make_user, make_tool, grant):
    grant(make_user("alice"), make_tool("legacy-tool"))

    document = json.loads(export_access_document(all_database_tools=True))

    assert {"key": "legacy-tool", "name": "Legacy Tool", "users": [{"email": "alice@example.com", "username": "alice"}]} in document["tools"]


@pytest.mark.django_db
def test_export__reads_all_grants_in_one_query(demo_data, django_assert_num_queries):
    # Tools, users, grants: the same three queries whatever the number of grants.
    with django_assert_num_queries(3):
        export_access_document()
    assert ToolAccess.objects.count() == 10
