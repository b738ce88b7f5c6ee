"""Fuzzing the access file reader (deploy/access_file.py) with hypothesis.

Whatever bytes it is given, `parse_access_file` either returns an AccessFile
or raises AccessFileError with one short line naming the source; never
another exception. What it accepts is exactly what the schema allows (checked
against an independent reading of SPEC.md), and what it accepts can be stored
and exported (valid Unicode, no blank names).

These tests use no database: pytest-django blocks database access in a test
not marked django_db, so any query the reader made (a write above all) would
fail them. The command-level fuzz (import_access on mutated files writes
nothing) is in test_access_properties.py, where the database is.
"""
import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from deploy.access_file import (
    ACCESS_SCHEMA,
    AccessFile,
    AccessFileError,
    AccessFileTool,
    AccessFileUser,
    parse_access_file,
)

SOURCE = "fuzzed.json"
# An error is one line for a person: it may quote a value, not a whole file.
MAX_MESSAGE_LENGTH = 600
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID = (
    b'{"schema": "omnitool.access/v1", "environment": "staging", "tools": ['
    b'{"key": "invoice-generator", "name": "Invoice Generator",'
    b' "users": [{"username": "alice", "email": "alice@example.com"}, {"username": "bob", "email": "bob@example.com"}]},'
    b'{"key": "team-directory", "name": "Team Directory", "users": []}]}'
)


def serialise(document: object, ascii_escapes: bool = False) -> bytes:
    """The access file's own format (what export_access writes); with `ascii_escapes`, every
    non-ASCII character as a \\uXXXX escape (what other JSON writers often produce)."""
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=ascii_escapes) + "\n"
    return text.encode("utf-8", "surrogatepass")


def read(data: bytes) -> AccessFile | AccessFileError:
    """Parse, allowing only the two outcomes the contract names; anything else fails the test."""
    try:
        return parse_access_file(data, source=SOURCE)
    except AccessFileError as error:
        message = str(error)
        assert message.startswith(SOURCE), message
        assert "\n" not in message and "\r" not in message, message
        assert len(message) <= MAX_MESSAGE_LENGTH, f"{len(message)}-character error: {message[:200]}…"
        return error


# --- an independent reading of the schema (SPEC.md, "The access file") --------------------------


def _is_name(value: object) -> bool:
    """A non-blank string of valid Unicode (storable in any database, printable to any UTF-8 stream)."""
    if type(value) is not str or not value.strip():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def expected_reading(document: object) -> AccessFile | None:
    """What a reader that follows the spec returns for `document` (a parsed JSON value), or None to refuse."""
    if not isinstance(document, dict) or set(document) != {"schema", "environment", "tools"}:
        return None
    if document["schema"] != ACCESS_SCHEMA or not _is_name(document["environment"]):
        return None
    if type(document["tools"]) is not list:
        return None
    tools = []
    for tool in document["tools"]:
        if not isinstance(tool, dict) or set(tool) != {"key", "name", "users"}:
            return None
        if not (_is_name(tool["key"]) and _is_name(tool["name"]) and type(tool["users"]) is list):
            return None
        users = []
        for user in tool["users"]:
            if not isinstance(user, dict) or set(user) != {"username", "email"}:
                return None
            if not (_is_name(user["username"]) and _is_name(user["email"])):
                return None
            users.append(AccessFileUser(user["username"], user["email"]))
        if len({user.username for user in users}) != len(users):
            return None
        tools.append(AccessFileTool(tool["key"], tool["name"], tuple(users)))
    if len({tool.key for tool in tools}) != len(tools):
        return None
    return AccessFile(environment=document["environment"], tools=tuple(tools), source=SOURCE)


# --- strategies ---------------------------------------------------------------------------------

# Names as people and other systems write them: any Unicode, sometimes odd (spaces, quotes, RTL, emoji).
names = st.text(min_size=1, max_size=16).filter(str.strip)
odd_strings = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["", " ", "\t\n", "\u00a0", "\u200b", "\ufeff", "\ud800", "a\udfffb", "\x00", "null"]),
    st.text(alphabet=st.characters(categories=["Cs"]), min_size=1, max_size=3),
)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), odd_strings
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def access_documents(draw) -> dict:
    """A valid access document: unique tool keys, unique usernames per tool."""
    tools = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "key": names,
                    "name": names,
                    "users": st.lists(
                        st.fixed_dictionaries({"username": names, "email": names}),
                        max_size=5,
                        unique_by=lambda user: user["username"],
                    ),
                }
            ),
            max_size=5,
            unique_by=lambda tool: tool["key"],
        )
    )
    return {"schema": ACCESS_SCHEMA, "environment": draw(names), "tools": tools}


def _containers(node: object, path: tuple = ()) -> list[tuple]:
    """Paths to every dict and list in `node`, the root included."""
    found = []
    if isinstance(node, (dict, list)):
        found.append(path)
        children = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in children:
            found.extend(_containers(child, (*path, key)))
    return found


def _at(node: object, path: tuple) -> object:
    for key in path:
        node = node[key]
    return node


@st.composite
def mutated_documents(draw) -> object:
    """A valid document with one structural change: a value replaced, a field dropped or added,
    an element duplicated, or the whole document replaced."""
    document = draw(access_documents())
    path = draw(st.sampled_from(_containers(document)))
    container = _at(document, path)
    mutation = draw(st.sampled_from(["replace", "drop", "add", "duplicate", "root"]))
    if mutation == "root":
        return draw(json_values)
    if isinstance(container, dict):
        key = draw(st.sampled_from(sorted(container)))
        if mutation == "drop":
            del container[key]
        elif mutation == "add":
            container[draw(st.sampled_from(["extra", "users", "key", "username", "email", "schema", "Key"]))] = draw(
                json_values
            )
        else:
            container[key] = draw(json_values)
    elif container:
        index = draw(st.integers(0, len(container) - 1))
        if mutation == "drop":
            del container[index]
        elif mutation == "duplicate":
            container.append(json.loads(json.dumps(container[index])))
        else:
            container[index] = draw(json_values)
    else:
        container.append(draw(json_values))
    return document


@st.composite
def corrupted_bytes(draw) -> bytes:
    """A valid file's bytes with a few bytes flipped, inserted, deleted, or the file cut short."""
    data = bytearray(draw(st.sampled_from([VALID, serialise(draw(access_documents()))])))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        operation = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if operation == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif operation == "insert":
            data[position:position] = draw(
                st.sampled_from([b"\x00", b"\xff", b"\xc3", b"{", b"}", b"[", b",", b'"', b"\\u", b"\\ud800", b"1" * 5000])
            )
        elif operation == "delete":
            del data[position : position + draw(st.integers(1, 8))]
        else:
            del data[position:]
    return bytes(data)


# --- the properties -----------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=512))
@example(b"")
@example(b"\xef\xbb\xbf")
@example(b"\x00" * 10)
@example("{}".encode("utf-16"))
@example(b"[" * 100_000)
def test_parse__arbitrary_bytes_only_raise_access_file_error(data):
    read(data)


@FUZZ
@given(st.text(max_size=256).map(lambda text: text.encode("utf-8")))
def test_parse__arbitrary_text_only_raises_access_file_error(data):
    read(data)


@FUZZ
@given(corrupted_bytes())
@example(VALID.replace(b'"staging"', b"1" + b"0" * 5000))
@example(VALID.replace(b'"staging"', b"1e99999"))
@example(VALID.replace(b'"staging"', b"NaN"))
@example(VALID.replace(b'"staging"', b"[" * 900 + b"]" * 900))
@example(VALID.replace(b'"omnitool.access/v1"', b"[" * 900 + b"]" * 900))
@example(VALID.replace(b'"omnitool.access/v1"', b'"' + b"x" * 100_000 + b'"'))
@example(VALID.replace(b'"alice"', b'"\\ud800"'))
def test_parse__corrupted_valid_files_only_raise_access_file_error(data):
    read(data)


@FUZZ
@given(corrupted_bytes())
def test_parse__whatever_it_accepts_is_what_the_json_says(data):
    outcome = read(data)
    if isinstance(outcome, AccessFile):
        assert outcome == expected_reading(json.loads(data.decode("utf-8-sig")))


@FUZZ
@given(access_documents(), st.booleans())
def test_parse__every_valid_document_is_read_exactly(document, ascii_escapes):
    assert read(serialise(document, ascii_escapes)) == expected_reading(document)


@FUZZ
@given(document=mutated_documents(), ascii_escapes=st.booleans())
@example(document={"schema": ACCESS_SCHEMA, "environment": "x", "tools": [{"key": "a", "name": "A", "users": [{"username": " ", "email": "e"}]}]}, ascii_escapes=True)
@example(document={"schema": ACCESS_SCHEMA, "environment": "x", "tools": [{"key": "a", "name": "A", "users": [{"username": "u", "email": "\t"}]}]}, ascii_escapes=True)
@example(document={"schema": ACCESS_SCHEMA, "environment": "x", "tools": [{"key": "\ud800", "name": "A", "users": []}]}, ascii_escapes=True)
@example(document={"schema": ACCESS_SCHEMA, "environment": "x", "tools": [{"key": "a", "name": "A", "users": [{"username": "a\udfff", "email": "e"}]}]}, ascii_escapes=True)
@example(document={"schema": ACCESS_SCHEMA, "environment": "x", "tools": [{"key": "a", "name": "A", "users": [{"username": "u", "email": "e"}, {"username": "u", "email": "f"}]}]}, ascii_escapes=True)
def test_parse__accepts_a_changed_document_only_when_the_schema_allows_it(document, ascii_escapes):
    data = serialise(document, ascii_escapes)
    outcome = read(data)
    # What the bytes say, as JSON reads them: two escaped surrogates that form a pair are one character.
    expected = expected_reading(json.loads(data.decode("utf-8", "surrogatepass")))

    if expected is None:
        assert isinstance(outcome, AccessFileError), f"accepted a document the schema refuses: {outcome}"
    else:
        assert outcome == expected


@FUZZ
@given(mutated_documents())
def test_parse__refusal_names_the_source_in_one_short_line(document):
    # read() checks the message itself; this drives it with the structural mutations too.
    read(serialise(document, ascii_escapes=True))


def test_parse__refuses_a_file_over_the_byte_limit_before_parsing():
    with pytest.raises(AccessFileError, match=r"^fuzzed\.json: the file is 1,000 bytes, over the limit of 999 bytes"):
        parse_access_file(b" " * 1000, source=SOURCE, max_bytes=999)
