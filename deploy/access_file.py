"""The access file (schema omnitool.access/v1): read and validate one, and
export this database's grants as one.

The file names tools by key and users by (username, email), so it travels
between environments whose ids differ. Reading is strict: anything that is not
exactly the schema raises `AccessFileError` with one line naming the file and
the place (line/column for JSON syntax, a JSON path such as
`tools[2].users[0].email` for the shape), before anything is written.

Export is deterministic: tools sorted by key, users by username (code point
order, never a database collation), 2-space indent, sorted keys, UTF-8, one
trailing newline, no timestamps; the bytes equal
`json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\\n"`.
It is rendered from one query that aggregates each tool's user ids, so a
million grants cost a hundred rows and a few sets of ints, not a million
rows or objects.
"""
from __future__ import annotations

import json
import operator
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Count

from tools import catalogue as tool_catalogue
from tools.models import Tool, ToolAccess

ACCESS_SCHEMA = "omnitool.access/v1"



class AccessFileError(Exception):
    """An access file that cannot be used. `str(error)` is one line naming the file and the place."""


@dataclass(frozen=True, slots=True)
class AccessFileUser:
    """A user as the file names them: username and email (email compared case-insensitively)."""

    username: str
    email: str


_username = operator.attrgetter("username")


@dataclass(frozen=True)
class AccessFileTool:
    """A tool as the file lists it, with the users granted it."""

    key: str
    name: str
    users: tuple[AccessFileUser, ...]


@dataclass(frozen=True)
class AccessFile:
    """A whole validated access file. `source` is where it came from, for messages."""

    environment: str
    tools: tuple[AccessFileTool, ...]
    source: str

    @property
    def grant_count(self) -> int:
        return sum(len(tool.users) for tool in self.tools)


# ---------------------------------------------------------------------------
# Reading


def read_access_file(path: str | Path, *, max_bytes: int | None = None) -> AccessFile:
    """Read and validate the access file at `path` ("-" reads stdin).

    `max_bytes` defaults to settings.ACCESS_FILE_MAX_BYTES; a bigger file is refused unread.
    """
    limit = settings.ACCESS_FILE_MAX_BYTES if max_bytes is None else max_bytes
    if str(path) == "-":
        source = "<stdin>"
        # Read one byte past the limit so that an oversized stream is refused without holding all of it.
        data = sys.stdin.buffer.read(limit + 1 if limit else -1)
        if limit and len(data) > limit:
            raise AccessFileError(
                f"{source}: the input is over the limit of {limit:,} bytes "
                "(raise ACCESS_FILE_MAX_BYTES if it is genuine)."
            )
    else:
        source = str(path)
        file_path = Path(path)
        try:
            size = file_path.stat().st_size
            if limit and size > limit:
                raise AccessFileError(_too_big_message(source, size, limit))
            data = file_path.read_bytes()
        except FileNotFoundError:
            raise AccessFileError(f"{source}: no such file; export one with `manage.py export_access`.") from None
        except IsADirectoryError:
            raise AccessFileError(f"{source}: is a directory, not an access file.") from None
        except PermissionError:
            raise AccessFileError(f"{source}: permission denied.") from None
    return parse_access_file(data, source=source, max_bytes=limit)


def parse_access_file(data: bytes, *, source: str = "<bytes>", max_bytes: int | None = None) -> AccessFile:
    """Validate `data` as an access file. Raises AccessFileError naming `source` and the place."""
    if max_bytes and len(data) > max_bytes:
        raise AccessFileError(_too_big_message(source, len(data), max_bytes))
    text = _decode(data, source)
    # Users repeat across tools (10k users x 100 tools): interning them while
    # parsing keeps one object per distinct user instead of a dict per grant.
    # The cache is keyed by the object's exact (key, value) pairs, so only an
    # object already validated as a user can hit it.
    interned: dict[tuple, AccessFileUser] = {}

    def compact_object(pairs: list[tuple[str, object]]):
        if len(pairs) == 2:
            identity = tuple(pairs)
            try:
                return interned[identity]
            except (KeyError, TypeError):  # TypeError: a value is an array or object
                pass
            user = _as_user(pairs)
            if user is not None:
                interned[identity] = user = interned.get((identity[1], identity[0]), user)
                return user
        mapping = dict(pairs)
        if len(mapping) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    return _DuplicateField(key)
                seen.add(key)
        return mapping

    try:
        # parse_int=float: no number is valid here, and float() never refuses a
        # 5,000-digit integer the way int() does (ValueError past 4,300 digits).
        document = json.loads(text, object_pairs_hook=compact_object, parse_int=float)
    except json.JSONDecodeError as error:
        raise AccessFileError(
            f"{source}:{error.lineno}:{error.colno}: not valid JSON: {error.msg}."
        ) from None
    except ValueError as error:
        raise AccessFileError(f"{source}: not valid JSON: {_quote(str(error), 200)}") from None
    except RecursionError:
        raise AccessFileError(f"{source}: not an access file: JSON nested too deeply.") from None
    del text
    return _validate_document(document, source)


def _as_user(pairs: list[tuple[str, object]]) -> AccessFileUser | None:
    """The user a well-formed {"username", "email"} object names, else None (validation says why)."""
    fields = dict(pairs)
    username, email = fields.get("username"), fields.get("email")
    if (
        type(username) is str
        and type(email) is str
        and len(fields) == 2
        and username.strip()
        and email.strip()
        and _is_unicode(username)
        and _is_unicode(email)
    ):
        return AccessFileUser(username, email)
    return None


class _DuplicateField:
    """Stands in for a JSON object that names a field twice, so validation can say where."""

    def __init__(self, key: str):
        self.key = key


def _is_unicode(value: str) -> bool:
    """False for a string holding a lone surrogate (JSON allows "\\ud800"; UTF-8 and databases do not)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _quote(value: str, limit: int = 60) -> str:
    """`value` quoted for a message, cut short: an error line may quote a value, not a whole file."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _too_big_message(source: str, size: int, limit: int) -> str:
    return (
        f"{source}: the file is {size:,} bytes, over the limit of {limit:,} bytes "
        "(raise ACCESS_FILE_MAX_BYTES if it is genuine)."
    )


def _decode(data: bytes, source: str) -> str:
    if not data or data.isspace():  # isspace, not strip: no copy of a 100 MB file
        raise AccessFileError(f"{source}: the file is empty; expected a JSON access file ({ACCESS_SCHEMA}).")
    nul = data.find(b"\x00")
    if nul != -1:
        line, column = _line_and_column(data, nul)
        raise AccessFileError(f"{source}:{line}:{column}: binary data (a NUL byte), not a JSON access file.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = _line_and_column(data, error.start)
        raise AccessFileError(
            f"{source}:{line}:{column}: not UTF-8 (byte 0x{data[error.start]:02x}); save the file as UTF-8."
        ) from None
    return text[1:] if text.startswith("\ufeff") else text


def _line_and_column(data: bytes, offset: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return line, column


_JSON_TYPE_NAMES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
    AccessFileUser: "an object",
    _DuplicateField: "an object",
}


def _json_type(value: object) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _fail(source: str, path: str, message: str) -> AccessFileError:
    return AccessFileError(f"{source}: {path}: {message}")


def _as_object(value: object, source: str, path: str, fields: tuple[str, ...]) -> dict:
    """`value` as a dict with exactly `fields`, or an error naming `path`."""
    if isinstance(value, AccessFileUser):
        value = {"username": value.username, "email": value.email}
    if isinstance(value, _DuplicateField):
        raise _fail(source, path, f"the field {_quote(value.key)} appears twice.")
    if not isinstance(value, dict):
        raise _fail(source, path, f"expected an object, found {_json_type(value)}.")
    for field_name in fields:
        if field_name not in value:
            raise _fail(source, path, f"missing field {field_name!r}.")
    extra = sorted(set(value) - set(fields))
    if extra:
        raise _fail(source, path, f"unexpected field {_quote(extra[0])} (allowed: {', '.join(fields)}).")
    return value


def _string(value: object, source: str, path: str) -> str:
    if type(value) is not str:
        raise _fail(source, path, f"expected a string, found {_json_type(value)}.")
    if not value.strip():
        raise _fail(source, path, "must not be empty.")
    if not _is_unicode(value):
        raise _fail(source, path, "not valid Unicode (a lone surrogate such as \\ud800).")
    return value


def _list(value: object, source: str, path: str) -> list:
    if type(value) is not list:
        raise _fail(source, path, f"expected an array, found {_json_type(value)}.")
    return value


def _validate_document(document: object, source: str) -> AccessFile:
    if not isinstance(document, (dict, AccessFileUser, _DuplicateField)):
        raise AccessFileError(
            f"{source}: not an access file: expected a JSON object with \"schema\": \"{ACCESS_SCHEMA}\", "
            f"found {_json_type(document)}."
        )
    top = document if isinstance(document, dict) else None
    if top is not None and "schema" in top and top["schema"] != ACCESS_SCHEMA:
        found = _quote(top["schema"]) if type(top["schema"]) is str else _json_type(top["schema"])
        raise _fail(source, "schema", f"expected {ACCESS_SCHEMA!r}, found {found}.")
    top = _as_object(document, source, "$", ("schema", "environment", "tools"))
    environment = _string(top["environment"], source, "environment")
    raw_tools = _list(top["tools"], source, "tools")
    tools: list[AccessFileTool] = []
    tool_positions: dict[str, int] = {}
    for tool_index, raw_tool in enumerate(raw_tools):
        tool_path = f"tools[{tool_index}]"
        raw_tool = _as_object(raw_tool, source, tool_path, ("key", "name", "users"))
        key = _string(raw_tool["key"], source, f"{tool_path}.key")
        name = _string(raw_tool["name"], source, f"{tool_path}.name")
        if key in tool_positions:
            raise _fail(
                source, f"{tool_path}.key", f"duplicate tool {_quote(key)} (also at tools[{tool_positions[key]}])."
            )
        tool_positions[key] = tool_index
        raw_users = _list(raw_tool["users"], source, f"{tool_path}.users")
        tools.append(AccessFileTool(key=key, name=name, users=_validate_users(raw_users, source, tool_path)))
    return AccessFile(environment=environment, tools=tuple(tools), source=source)


def _validate_users(raw_users: list, source: str, tool_path: str) -> tuple[AccessFileUser, ...]:
    # Fast path: the parser turned every well-formed user into an AccessFileUser.
    if set(map(type, raw_users)) <= {AccessFileUser}:
        users = tuple(raw_users)
        if len(set(map(_username, users))) == len(users):
            return users
    positions: dict[str, int] = {}
    for user_index, raw_user in enumerate(raw_users):
        user_path = f"{tool_path}.users[{user_index}]"
        user = _as_object(raw_user, source, user_path, ("username", "email"))
        username = _string(user["username"], source, f"{user_path}.username")
        _string(user["email"], source, f"{user_path}.email")
        if username in positions:
            raise _fail(
                source,
                f"{user_path}.username",
                f"duplicate user {_quote(username)} (also at {tool_path}.users[{positions[username]}]).",
            )
        positions[username] = user_index
    raise AssertionError("unreachable: a user list that failed the fast path must fail validation")  # pragma: no cover


# ---------------------------------------------------------------------------
# Exporting


@dataclass
class ExportSummary:
    """What an export contained; filled in while its bytes are produced."""

    environment: str
    tool_count: int = 0
    grant_count: int = 0
    byte_count: int = 0


def grants_outside_catalogue(*, using: str = DEFAULT_DB_ALIAS) -> dict[str, int]:
    """Grant counts on database tools the catalogue lacks, by key: what an export leaves out."""
    keys = [tool.key for tool in tool_catalogue.CATALOGUE]
    return dict(
        ToolAccess.objects.using(using)
        .exclude(tool__key__in=keys)
        .values_list("tool__key")
        .annotate(grants=Count("pk"))
        .order_by("tool__key")
    )


def iter_access_document(
    *,
    using: str = DEFAULT_DB_ALIAS,
    environment: str | None = None,
    all_database_tools: bool = False,
    summary: ExportSummary | None = None,
) -> Iterator[bytes]:
    """The access file's bytes in pieces (one per tool), for writing without holding it whole.

    Lists every catalogue tool (with the database's name when it has one);
    with `all_database_tools`, every tool in the database instead (what
    snapshots keep). Grants come from one query, aggregated per tool.
    """
    summary = summary if summary is not None else ExportSummary(environment="")
    summary.environment = environment or settings.OMNITOOL_ENV
    database_tools = {key: (tool_id, name) for tool_id, key, name in Tool.objects.using(using).values_list("id", "key", "name")}
    if all_database_tools:
        listed = {key: (tool_id, name) for key, (tool_id, name) in database_tools.items()}
    else:
        listed = {
            entry.key: database_tools.get(entry.key, (None, entry.name)) for entry in tool_catalogue.CATALOGUE
        }
    listed_ids = {tool_id for tool_id, _ in listed.values() if tool_id is not None}

    # Grants before users: every user a grant names then still exists, or was
    # deleted since (and its grants with it), so nothing needs a second look.
    granted = _aggregated_grants(using, listed_ids)
    users_by_id = _user_identities(using)

    # Sort users once by username (code point order), then each tool's grants by that rank.
    ordered_ids = sorted(users_by_id, key=lambda user_id: users_by_id[user_id][0])
    rank = {user_id: position for position, user_id in enumerate(ordered_ids)}
    rendered = {
        user_id: (
            "        {\n"
            f"          \"email\": {_json_string(email)},\n"
            f"          \"username\": {_json_string(username)}\n"
            "        }"
        )
        for user_id, (username, email) in users_by_id.items()
    }

    head = (
        "{\n"
        f"  \"environment\": {_json_string(summary.environment)},\n"
        f"  \"schema\": {_json_string(ACCESS_SCHEMA)},\n"
        "  \"tools\": ["
    )
    keys = sorted(listed)
    if not keys:
        yield _count(summary, (head + "]\n}\n").encode())
        return
    yield _count(summary, (head + "\n").encode())
    for position, key in enumerate(keys):
        tool_id, name = listed[key]
        user_ids = _in_username_order(_user_id_set(granted.get(tool_id, "")), ordered_ids, rank)
        if user_ids:
            users_json = "[\n" + ",\n".join([rendered[user_id] for user_id in user_ids]) + "\n      ]"
        else:
            users_json = "[]"
        closing = "    },\n" if position < len(keys) - 1 else "    }\n"
        summary.tool_count += 1
        summary.grant_count += len(user_ids)
        yield _count(
            summary,
            (
                "    {\n"
                f"      \"key\": {_json_string(key)},\n"
                f"      \"name\": {_json_string(name)},\n"
                f"      \"users\": {users_json}\n"
                f"{closing}"
            ).encode(),
        )
    yield _count(summary, b"  ]\n}\n")


def export_access_document(
    *, using: str = DEFAULT_DB_ALIAS, environment: str | None = None, all_database_tools: bool = False
) -> bytes:
    """The deterministic access file of this database: every catalogue tool, sorted, 2-space indent, UTF-8."""
    return b"".join(iter_access_document(using=using, environment=environment, all_database_tools=all_database_tools))


def _count(summary: ExportSummary, chunk: bytes) -> bytes:
    summary.byte_count += len(chunk)
    return chunk


def _json_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def granted_user_ids_by_tool(using: str = DEFAULT_DB_ALIAS, tool_ids: set[int] | None = None) -> dict[int, set[int]]:
    """The user ids granted each tool (every tool, or those in `tool_ids`) that has grants, from one query."""
    return {tool_id: _user_id_set(user_ids) for tool_id, user_ids in _aggregated_grants(using, tool_ids).items()}


def _aggregated_grants(using: str, tool_ids: set[int] | None) -> dict[int, str | set[int]]:
    """Each tool's granted user ids as the database aggregated them: "12,7,40".

    One query: a million grants arrive as a hundred rows, and become ints in C
    (`_user_id_set`) one tool at a time, instead of a million rows each
    passing through Python.
    """
    connection = connections[using]
    meta = ToolAccess._meta
    quote = connection.ops.quote_name
    table, user, tool = quote(meta.db_table), quote(meta.get_field("user").column), quote(meta.get_field("tool").column)
    if connection.vendor == "postgresql":
        aggregate = f"string_agg({user}::text, ',')"
    elif connection.vendor == "sqlite":
        aggregate = f"group_concat({user}, ',')"
    else:  # other backends: the same result, row by row
        granted: dict[int, set[int]] = {}
        for tool_id, user_id in ToolAccess.objects.using(using).values_list("tool_id", "user_id").iterator():
            if tool_ids is None or tool_id in tool_ids:
                granted.setdefault(tool_id, set()).add(user_id)
        return granted
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {tool}, {aggregate} FROM {table} GROUP BY {tool}")
        return {
            tool_id: user_ids for tool_id, user_ids in cursor.fetchall() if tool_ids is None or tool_id in tool_ids
        }


def _user_id_set(user_ids: str | set[int]) -> set[int]:
    if isinstance(user_ids, set):
        return user_ids
    return set(map(int, user_ids.split(","))) if user_ids else set()


def _in_username_order(user_ids: set[int], ordered_ids: list[int], rank: dict[int, int]) -> list[int]:
    """`user_ids` (those with a known username) in username order."""
    if len(user_ids) * 8 < len(ordered_ids):
        return sorted((user_id for user_id in user_ids if user_id in rank), key=rank.__getitem__)
    return [user_id for user_id in ordered_ids if user_id in user_ids]


def _user_identities(using: str, ids: set[int] | None = None) -> dict[int, tuple[str, str]]:
    users = get_user_model().objects.using(using)
    if ids is not None:
        users = users.filter(pk__in=ids)
    return {user_id: (username, email) for user_id, username, email in users.values_list("id", "username", "email")}
