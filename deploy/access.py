"""Importing an access file: plan, then apply.

`build_plan` compares a validated `AccessFile` with the database and returns an
`AccessPlan` (data only, no writes): per tool the grants to add and to remove,
how many are unchanged, the users the file names that this database cannot
match, and the tools it lacks. Users match on (username, email), email
compared case-insensitively: a username whose email differs is a different
person and is never granted.

`apply_plan` writes a plan in one transaction under the grants lock. It
re-plans under the lock first, so two imports never interleave and never
collide on the unique (user, tool) pair (a grant the admin commits meanwhile
makes it start again); it stores an access snapshot before
its first write; it writes set-based batches of integer ids (PostgreSQL:
`INSERT ... SELECT FROM unnest(...)`, SQLite: `json_each`), so the number of
queries grows with batches, not grants. A plan without changes writes
nothing, takes no snapshot and uses no sequence values.

Modes: "merge" adds what the file grants and never deletes; "mirror" also
removes grants on the file's listed tools that the file lacks (tools the file
does not list are left alone).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.utils import timezone

from deploy.access_file import AccessFile, AccessFileUser, granted_user_ids_by_tool
from tools.locking import acquire_grants_lock
from tools.models import Tool, ToolAccess

if TYPE_CHECKING:
    from deploy.models import AccessSnapshot

MERGE = "merge"
MIRROR = "mirror"
MODES = (MERGE, MIRROR)

UNKNOWN_USER = "unknown user"
EMAIL_DIFFERS = "email differs"

# Grants written per statement: big enough that a million grants take 20
# statements, small enough that one statement's id arrays stay a few MB.
WRITE_BATCH_SIZE = 50_000
APPLY_ATTEMPTS = 3

ProgressCallback = Callable[[int, int], None]  # (grants written so far, grants to write)


@dataclass(frozen=True, order=True)
class UnmatchedUser:
    """A user the file names that this database cannot match; their grants are skipped."""

    username: str
    email: str
    reason: str  # UNKNOWN_USER or EMAIL_DIFFERS
    tools: tuple[str, ...]  # keys of the tools the file grants them

    def describe(self) -> str:
        return f"{self.username} <{self.email}>: {self.reason}, skipped on {', '.join(self.tools)}"

    def as_dict(self) -> dict:
        return {"username": self.username, "email": self.email, "reason": self.reason, "tools": list(self.tools)}


@dataclass(frozen=True)
class UnknownTool:
    """A tool the file lists that this database lacks; its grants are skipped."""

    key: str
    name: str
    user_count: int

    def describe(self) -> str:
        noun = "grant" if self.user_count == 1 else "grants"
        return f"{self.key} ({self.name}): not in this database, {self.user_count} {noun} skipped"

    def as_dict(self) -> dict:
        return {"key": self.key, "name": self.name, "users": self.user_count}


@dataclass
class ToolChange:
    """The plan for one tool the file lists: user ids to grant and to revoke."""

    key: str
    name: str
    tool_id: int
    add_user_ids: list[int]
    remove_user_ids: list[int]
    unchanged: int
    usernames: Mapping[int, str] = field(repr=False, compare=False, default_factory=dict)

    @property
    def to_add(self) -> list[str]:
        """Usernames to grant, sorted."""
        return sorted(self.usernames[user_id] for user_id in self.add_user_ids)

    @property
    def to_remove(self) -> list[str]:
        """Usernames to revoke, sorted."""
        return sorted(self.usernames[user_id] for user_id in self.remove_user_ids)

    @property
    def has_changes(self) -> bool:
        return bool(self.add_user_ids or self.remove_user_ids)

    def as_dict(self) -> dict:
        return {
            "key": self.key,
            "name": self.name,
            "to_add": self.to_add,
            "to_remove": self.to_remove,
            "unchanged": self.unchanged,
        }


@dataclass
class AccessPlan:
    """What importing an access file would change. Building one writes nothing."""

    mode: str
    source: str
    environment: str  # the environment the file was exported from
    tools: list[ToolChange]
    unmatched_users: list[UnmatchedUser]
    unknown_tools: list[UnknownTool]
    access_file: AccessFile = field(repr=False, compare=False)
    all_tools: bool = False  # every database tool is in scope (restoring a snapshot)

    @property
    def to_add_count(self) -> int:
        return sum(len(tool.add_user_ids) for tool in self.tools)

    @property
    def to_remove_count(self) -> int:
        return sum(len(tool.remove_user_ids) for tool in self.tools)

    @property
    def unchanged_count(self) -> int:
        return sum(tool.unchanged for tool in self.tools)

    @property
    def has_changes(self) -> bool:
        return any(tool.has_changes for tool in self.tools)

    @property
    def has_unmatched(self) -> bool:
        """The file names users or tools this database lacks (an error under --strict)."""
        return bool(self.unmatched_users or self.unknown_tools)

    def grants_to_add(self) -> list[tuple[str, str]]:
        """(tool key, username) pairs to grant, sorted."""
        return [(tool.key, username) for tool in self.tools for username in tool.to_add]

    def grants_to_remove(self) -> list[tuple[str, str]]:
        """(tool key, username) pairs to revoke, sorted."""
        return [(tool.key, username) for tool in self.tools for username in tool.to_remove]

    def summary(self) -> dict[str, int]:
        return {
            "to_add": self.to_add_count,
            "to_remove": self.to_remove_count,
            "unchanged": self.unchanged_count,
            "unmatched_users": len(self.unmatched_users),
            "unknown_tools": len(self.unknown_tools),
        }

    def as_dict(self) -> dict:
        """The plan as one JSON-ready document (`import_access --format json`)."""
        return {
            "mode": self.mode,
            "source": self.source,
            "environment": self.environment,
            "has_changes": self.has_changes,
            "summary": self.summary(),
            "tools": [tool.as_dict() for tool in self.tools],
            "unmatched_users": [user.as_dict() for user in self.unmatched_users],
            "unknown_tools": [tool.as_dict() for tool in self.unknown_tools],
        }


@dataclass
class ImportResult:
    """What `apply_plan` did. `plan` is the plan re-built under the lock, the one applied."""

    plan: AccessPlan
    added: int
    removed: int
    snapshot: AccessSnapshot | None

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


def build_plan(
    access_file: AccessFile, *, mode: str = MERGE, using: str = DEFAULT_DB_ALIAS, all_tools: bool = False
) -> AccessPlan:
    """Compare `access_file` with the database. No writes, no side effects.

    `all_tools` (with mirror) puts every database tool in scope, the file's
    missing ones as tools without users: restoring a snapshot uses it.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    tools_by_key = {key: (tool_id, name) for tool_id, key, name in Tool.objects.using(using).values_list("id", "key", "name")}
    users_by_username: dict[str, tuple[int, str]] = {}
    usernames: dict[int, str] = {}
    for user_id, username, email in get_user_model().objects.using(using).values_list("id", "username", "email"):
        users_by_username[username] = (user_id, email)
        usernames[user_id] = username

    # Resolve each distinct user of the file once. The parser shares one object
    # per (username, email), so the per-grant work below is C-level set and map
    # calls over object ids, not a Python loop over a million grants.
    user_id_by_object: dict[int, int | None] = {}
    unmatched_by_object: dict[int, tuple[AccessFileUser, str]] = {}
    unmatched_tools: dict[int, list[str]] = {}

    def resolve(user: AccessFileUser) -> int | None:
        database_user = users_by_username.get(user.username)
        if database_user is None:
            reason = UNKNOWN_USER
        elif database_user[1].casefold() != user.email.casefold():
            reason = EMAIL_DIFFERS
        else:
            return database_user[0]
        unmatched_by_object[id(user)] = (user, reason)
        return None

    listed: list[tuple[str, str, int, set[int]]] = []  # key, name, tool id, user ids the file grants
    unknown_tools: list[UnknownTool] = []
    for tool in access_file.tools:
        database_tool = tools_by_key.get(tool.key)
        if database_tool is None:
            unknown_tools.append(UnknownTool(tool.key, tool.name, len(tool.users)))
            continue
        object_ids = set(map(id, tool.users))
        if not object_ids <= user_id_by_object.keys():
            for user in tool.users:
                if id(user) not in user_id_by_object:
                    user_id_by_object[id(user)] = resolve(user)
        wanted = set(map(user_id_by_object.__getitem__, object_ids))
        wanted.discard(None)
        for object_id in object_ids & unmatched_by_object.keys():
            unmatched_tools.setdefault(object_id, []).append(tool.key)
        listed.append((tool.key, database_tool[1], database_tool[0], wanted))
    if all_tools:
        listed_keys = {key for key, *_ in listed}
        listed += [
            (key, name, tool_id, set()) for key, (tool_id, name) in tools_by_key.items() if key not in listed_keys
        ]

    current = granted_user_ids_by_tool(using, {tool_id for _, _, tool_id, _ in listed})
    changes = []
    for key, name, tool_id, wanted in sorted(listed):
        granted = current.get(tool_id, set())
        changes.append(
            ToolChange(
                key=key,
                name=name,
                tool_id=tool_id,
                add_user_ids=sorted(wanted - granted),
                remove_user_ids=sorted(granted - wanted) if mode == MIRROR else [],
                unchanged=len(wanted & granted),
                usernames=usernames,
            )
        )
    return AccessPlan(
        mode=mode,
        source=access_file.source,
        environment=access_file.environment,
        tools=changes,
        unmatched_users=_unmatched_users(unmatched_by_object, unmatched_tools),
        unknown_tools=sorted(unknown_tools, key=lambda tool: tool.key),
        access_file=access_file,
        all_tools=all_tools,
    )


def _unmatched_users(
    unmatched_by_object: dict[int, tuple[AccessFileUser, str]], tool_keys_by_object: dict[int, list[str]]
) -> list[UnmatchedUser]:
    """One UnmatchedUser per (username, email), even if the file's users were not shared objects."""
    merged: dict[tuple[str, str], tuple[str, set[str]]] = {}
    for object_id, (user, reason) in unmatched_by_object.items():
        if object_id in tool_keys_by_object:
            merged.setdefault((user.username, user.email), (reason, set()))[1].update(tool_keys_by_object[object_id])
    return [
        UnmatchedUser(username, email, reason, tuple(sorted(tool_keys)))
        for (username, email), (reason, tool_keys) in sorted(merged.items())
    ]


class AccessImportConflict(Exception):
    """Other writers kept changing the grants while an import applied; nothing was written."""


def apply_plan(
    plan: AccessPlan,
    *,
    using: str = DEFAULT_DB_ALIAS,
    snapshot_reason: str = "before import_access",
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Make the plan's changes in one transaction, under the grants lock.

    The plan is re-built under the lock from the same file, so what is applied
    is exact even if the database changed since `plan` was printed; the
    returned result carries that plan. With changes, an access snapshot is
    stored first (in the same transaction). Any error rolls everything back.

    Imports exclude each other through the lock; the admin does not take it,
    so a grant it commits meanwhile can collide with one being inserted. The
    collision rolls the attempt back whole and the import plans and applies
    again, up to APPLY_ATTEMPTS times, then raises AccessImportConflict.
    """
    for attempt in range(1, APPLY_ATTEMPTS + 1):
        try:
            return _apply_once(plan, using=using, snapshot_reason=snapshot_reason, progress=progress)
        except IntegrityError as error:
            if attempt == APPLY_ATTEMPTS:
                raise AccessImportConflict(
                    f"the grants changed under the import {APPLY_ATTEMPTS} times ({error}); "
                    "nothing was written; run it again."
                ) from error
    raise AssertionError("unreachable")  # pragma: no cover


def _apply_once(plan: AccessPlan, *, using: str, snapshot_reason: str, progress: ProgressCallback | None) -> ImportResult:
    from deploy.snapshots import take_access_snapshot

    with transaction.atomic(using=using):
        acquire_grants_lock(using)
        locked_plan = build_plan(plan.access_file, mode=plan.mode, using=using, all_tools=plan.all_tools)
        if not locked_plan.has_changes:
            return ImportResult(plan=locked_plan, added=0, removed=0, snapshot=None)
        snapshot = take_access_snapshot(snapshot_reason, using=using)
        writer = GrantWriter(using, total=locked_plan.to_add_count + locked_plan.to_remove_count, progress=progress)
        removed = writer.delete(_grants_by_tool(locked_plan.tools, "remove_user_ids"))
        added = writer.insert(_grants_by_tool(locked_plan.tools, "add_user_ids"))
    return ImportResult(plan=locked_plan, added=added, removed=removed, snapshot=snapshot)


def _grants_by_tool(tools: Iterable[ToolChange], attribute: str) -> list[tuple[int, list[int]]]:
    """(tool id, user ids) for each tool, from ToolChange.add_user_ids or remove_user_ids."""
    return [(tool.tool_id, getattr(tool, attribute)) for tool in tools if getattr(tool, attribute)]


GrantBatch = tuple[list[int], list[int]]  # user ids, tool ids: one grant per position


class GrantWriter:
    """Set-based batched writes of grants to the grants table.

    One statement per batch whatever the batch holds: PostgreSQL unnests two
    bigint arrays, SQLite walks one JSON array (json_each); either way the
    statement has three parameters, far below any bind-variable limit.
    """

    def __init__(self, using: str, total: int = 0, progress: ProgressCallback | None = None):
        self.connection = connections[using]
        self.total = total
        self.done = 0
        self.progress = progress
        meta = ToolAccess._meta
        quote = self.connection.ops.quote_name
        self.table = quote(meta.db_table)
        self.user_column = quote(meta.get_field("user").column)
        self.tool_column = quote(meta.get_field("tool").column)
        self.granted_at_column = quote(meta.get_field("granted_at").column)
        self.granted_by_column = quote(meta.get_field("granted_by").column)
        self.granted_at = self.connection.ops.adapt_datetimefield_value(timezone.now())

    def insert(self, grants_by_tool: Iterable[tuple[int, list[int]]]) -> int:
        vendor = self.connection.vendor
        if vendor == "postgresql":
            # No ON CONFLICT: it costs a speculative insertion per row (a third of
            # the insert time at 1M grants), and the plan holds only missing pairs.
            # A pair the admin commits meanwhile raises IntegrityError: apply_plan retries.
            sql = (
                f"INSERT INTO {self.table} ({self.user_column}, {self.tool_column}, "
                f"{self.granted_at_column}, {self.granted_by_column}) "
                "SELECT pairs.user_id, pairs.tool_id, %s, NULL "
                "FROM unnest(%s::bigint[], %s::bigint[]) AS pairs(user_id, tool_id)"
            )
        elif vendor == "sqlite":
            sql = (
                f"INSERT INTO {self.table} ({self.user_column}, {self.tool_column}, "
                f"{self.granted_at_column}, {self.granted_by_column}) "
                "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), %s, NULL FROM json_each(%s)"
            )
        else:
            return self._insert_with_orm(grants_by_tool)
        return self._run_batches(sql, grants_by_tool, leading_parameters=[self.granted_at])

    def delete(self, grants_by_tool: Iterable[tuple[int, list[int]]]) -> int:
        vendor = self.connection.vendor
        if vendor == "postgresql":
            sql = (
                f"DELETE FROM {self.table} AS grants "
                "USING unnest(%s::bigint[], %s::bigint[]) AS pairs(user_id, tool_id) "
                f"WHERE grants.{self.user_column} = pairs.user_id AND grants.{self.tool_column} = pairs.tool_id"
            )
        elif vendor == "sqlite":
            sql = (
                f"DELETE FROM {self.table} WHERE ({self.user_column}, {self.tool_column}) IN "
                "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(%s))"
            )
        else:
            return self._delete_with_orm(grants_by_tool)
        return self._run_batches(sql, grants_by_tool, leading_parameters=[])

    def _run_batches(self, sql: str, grants_by_tool: Iterable[tuple[int, list[int]]], leading_parameters: list) -> int:
        rows = 0
        with self.connection.cursor() as cursor:
            for user_ids, tool_ids in _batches(grants_by_tool, WRITE_BATCH_SIZE):
                cursor.execute(sql, leading_parameters + self._batch_parameters(user_ids, tool_ids))
                rows += cursor.rowcount
                self._advance(len(user_ids))
        return rows

    def _batch_parameters(self, user_ids: list[int], tool_ids: list[int]) -> list[str]:
        if self.connection.vendor == "postgresql":
            # Array literals as text: far cheaper to build than per-element adaptation.
            return ["{" + ",".join(map(str, user_ids)) + "}", "{" + ",".join(map(str, tool_ids)) + "}"]
        return [json.dumps(list(zip(user_ids, tool_ids)), separators=(",", ":"))]

    def _insert_with_orm(self, grants_by_tool: Iterable[tuple[int, list[int]]]) -> int:
        rows = 0
        for user_ids, tool_ids in _batches(grants_by_tool, WRITE_BATCH_SIZE):
            ToolAccess.objects.using(self.connection.alias).bulk_create(
                [ToolAccess(user_id=user_id, tool_id=tool_id) for user_id, tool_id in zip(user_ids, tool_ids)]
            )
            rows += len(user_ids)
            self._advance(len(user_ids))
        return rows

    def _delete_with_orm(self, grants_by_tool: Iterable[tuple[int, list[int]]]) -> int:
        rows = 0
        for tool_id, user_ids in grants_by_tool:
            rows += ToolAccess.objects.using(self.connection.alias).filter(tool_id=tool_id, user_id__in=user_ids).delete()[0]
            self._advance(len(user_ids))
        return rows

    def _advance(self, count: int) -> None:
        self.done += count
        if self.progress is not None:
            self.progress(self.done, self.total)


def _batches(grants_by_tool: Iterable[tuple[int, list[int]]], size: int) -> Iterable[GrantBatch]:
    """Batches of at most `size` grants, filled across tool boundaries with list slices, not a loop per grant."""
    user_ids: list[int] = []
    tool_ids: list[int] = []
    for tool_id, tool_user_ids in grants_by_tool:
        start = 0
        while start < len(tool_user_ids):
            taken = tool_user_ids[start : start + size - len(user_ids)]
            user_ids += taken
            tool_ids += [tool_id] * len(taken)
            start += len(taken)
            if len(user_ids) >= size:
                yield user_ids, tool_ids
                user_ids, tool_ids = [], []
    if user_ids:
        yield user_ids, tool_ids
