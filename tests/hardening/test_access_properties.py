"""Properties of export_access / import_access over generated worlds (hypothesis).

A world is a small database (users, some inactive, an extra non-catalogue
tool, existing grants) and an access file naming users with the same email,
the same email in another case, another email, or no such user, on tools the
database has or lacks. Each property runs the real commands (call_command) and
compares with what SPEC.md says, computed independently here:

- import then export round-trips (byte for byte, modulo the database's names and emails);
- merge never removes a grant, and adds exactly the file's matched grants;
- mirror leaves exactly the file's matched grants on the listed tools, others untouched;
- importing twice equals importing once (the second run changes nothing, takes no snapshot);
- --dry-run never writes (no INSERT/UPDATE/DELETE reaches the database);
- a (username, email) that does not match is never granted;
- a damaged file is refused with a CommandError and writes nothing.

Each example runs inside a savepoint that is rolled back, so examples never see each other.
"""
import io
import json
import re
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploy.access_file import ACCESS_SCHEMA
from deploy.models import AccessSnapshot
from tests.conftest import grant_pairs
from tests.hardening.test_access_fuzz import corrupted_bytes
from tools.catalogue import CATALOGUE
from tools.models import Tool, ToolAccess

pytestmark = pytest.mark.django_db

PROPERTIES = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

CATALOGUE_KEYS = sorted(tool.key for tool in CATALOGUE)
EXTRA_TOOL = "extra-tool"  # in the database, not in the catalogue: export never lists it
GHOST_TOOL = "ghost-tool"  # only ever in files
USERNAMES = ["alice", "bob", "carol", "dave", "erin", "Frank", "user_a"]
EMAIL_VARIANTS = ["same", "other-case", "different"]
WRITE_STATEMENT = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|TRUNCATE)\b", re.IGNORECASE)


@dataclass(frozen=True)
class World:
    users: dict[str, tuple[str, bool]]  # username -> (email, is_active)
    grants: frozenset[tuple[str, str]]  # (username, tool key) in the database before the import
    file_tools: dict[str, list[tuple[str, str]]]  # tool key -> [(username, email as the file writes it)]

    def matched(self, username: str, email: str) -> bool:
        """SPEC: a user is the pair (username, email), email compared case-insensitively."""
        return username in self.users and self.users[username][0].lower() == email.lower()

    def file_grants(self) -> set[tuple[str, str]]:
        """The (username, key) pairs the file grants to users this database can match, on tools it has."""
        return {
            (username, key)
            for key, users in self.file_tools.items()
            if key != GHOST_TOOL
            for username, email in users
            if self.matched(username, email)
        }

    def document(self, environment: str = "staging") -> dict:
        return {
            "schema": ACCESS_SCHEMA,
            "environment": environment,
            "tools": [
                {
                    "key": key,
                    "name": key.replace("-", " ").title(),
                    "users": [{"username": username, "email": email} for username, email in users],
                }
                for key, users in sorted(self.file_tools.items())
            ],
        }


def email_as_written(username: str, variant: str) -> str:
    email = f"{username.lower()}@example.com"
    return {"same": email, "other-case": email.upper(), "different": f"{username.lower()}@elsewhere.example"}[variant]


@st.composite
def worlds(draw, *, file_tool_keys=(*CATALOGUE_KEYS, EXTRA_TOOL, GHOST_TOOL), variants=EMAIL_VARIANTS) -> World:
    database_usernames = draw(st.lists(st.sampled_from(USERNAMES), min_size=1, unique=True))
    users = {username: (f"{username.lower()}@example.com", draw(st.booleans())) for username in database_usernames}
    database_tools = [*CATALOGUE_KEYS, EXTRA_TOOL]
    grants = draw(
        st.frozensets(st.tuples(st.sampled_from(database_usernames), st.sampled_from(database_tools)), max_size=12)
    )
    listed = draw(st.lists(st.sampled_from(list(file_tool_keys)), unique=True, max_size=len(file_tool_keys)))
    file_tools = {
        key: [
            (username, email_as_written(username, draw(st.sampled_from(list(variants)))))
            for username in draw(st.lists(st.sampled_from(USERNAMES), unique=True, max_size=5))
        ]
        for key in listed
    }
    return World(users=users, grants=grants, file_tools=file_tools)


@contextmanager
def built(world: World):
    """The world's users, extra tool and grants, inside a savepoint rolled back at the end."""
    with transaction.atomic():
        User = get_user_model()
        people = {
            username: User.objects.create_user(username, email=email, is_active=active)
            for username, (email, active) in world.users.items()
        }
        Tool.objects.create(key=EXTRA_TOOL, name="Extra Tool")
        tools = {tool.key: tool for tool in Tool.objects.all()}
        ToolAccess.objects.bulk_create(
            [ToolAccess(user=people[username], tool=tools[key]) for username, key in world.grants]
        )
        yield
        transaction.set_rollback(True)


def write_file(path, document: dict):
    path.write_text(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def import_access(path, *arguments: str) -> dict:
    """Run import_access with --format json --noinput; return its JSON document."""
    out = io.StringIO()
    call_command("import_access", str(path), "--noinput", "--format", "json", *arguments, stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue())


def export_access(path) -> bytes:
    call_command("export_access", "--output", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    return path.read_bytes()


def tool_grants(key: str) -> set[str]:
    return set(ToolAccess.objects.filter(tool__key=key).values_list("user__username", flat=True))


# --- properties ---------------------------------------------------------------------------------


@PROPERTIES
@given(world=worlds(file_tool_keys=CATALOGUE_KEYS, variants=["same", "other-case"]))
def test_import_then_export__round_trips_the_file(tmp_path, catalogue_tools, world):
    with built(world):
        ToolAccess.objects.all().delete()
        source = write_file(tmp_path / "in.json", world.document())

        import_access(source, "--mode", "mirror")
        exported = export_access(tmp_path / "out.json")

        # What the file says, in the database's own words: its names, its emails, this environment.
        names = dict(Tool.objects.values_list("key", "name"))
        expected = {
            "environment": "local",
            "schema": ACCESS_SCHEMA,
            "tools": [
                {
                    "key": key,
                    "name": names[key],
                    "users": [
                        {"email": world.users[username][0], "username": username}
                        for username in sorted(username for username, _ in world.file_tools.get(key, []))
                        if username in world.users
                    ],
                }
                for key in CATALOGUE_KEYS
            ],
        }
        assert exported == (json.dumps(expected, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


@PROPERTIES
@given(world=worlds(), scrambled=st.frozensets(st.tuples(st.sampled_from(USERNAMES), st.sampled_from(CATALOGUE_KEYS))))
def test_export_then_mirror_import__restores_the_same_file(tmp_path, catalogue_tools, world, scrambled):
    with built(world):
        exported = export_access(tmp_path / "first.json")
        ToolAccess.objects.filter(tool__key__in=CATALOGUE_KEYS).delete()
        users = {user.username: user for user in get_user_model().objects.all()}
        ToolAccess.objects.bulk_create(
            [
                ToolAccess(user=users[username], tool=catalogue_tools[key])
                for username, key in scrambled
                if username in users
            ]
        )

        import_access(tmp_path / "first.json", "--mode", "mirror")

        assert export_access(tmp_path / "second.json") == exported


@PROPERTIES
@given(world=worlds())
def test_merge__never_removes_a_grant_and_adds_exactly_the_matched_ones(tmp_path, catalogue_tools, world):
    with built(world):
        before = grant_pairs()

        import_access(write_file(tmp_path / "access.json", world.document()), "--mode", "merge")

        assert grant_pairs() == before | world.file_grants()


@PROPERTIES
@given(world=worlds())
def test_mirror__leaves_exactly_the_files_matched_grants_on_listed_tools(tmp_path, catalogue_tools, world):
    with built(world):
        before = grant_pairs()
        wanted = world.file_grants()

        import_access(write_file(tmp_path / "access.json", world.document()), "--mode", "mirror")

        after = grant_pairs()
        for key in [*CATALOGUE_KEYS, EXTRA_TOOL]:
            if key in world.file_tools:
                assert {pair for pair in after if pair[1] == key} == {pair for pair in wanted if pair[1] == key}
            else:
                assert {pair for pair in after if pair[1] == key} == {pair for pair in before if pair[1] == key}


@PROPERTIES
@given(world=worlds(), mode=st.sampled_from(["merge", "mirror"]))
def test_import__twice_equals_once(tmp_path, catalogue_tools, world, mode):
    with built(world):
        source = write_file(tmp_path / "access.json", world.document())
        import_access(source, "--mode", mode)
        once = set(ToolAccess.objects.values_list("user__username", "tool__key", "granted_at"))
        snapshots = AccessSnapshot.objects.count()

        second = import_access(source, "--mode", mode)

        assert set(ToolAccess.objects.values_list("user__username", "tool__key", "granted_at")) == once
        assert AccessSnapshot.objects.count() == snapshots
        assert (second["status"], second["added"], second["removed"]) == ("unchanged", 0, 0)
        assert second["plan"]["has_changes"] is False


@PROPERTIES
@given(world=worlds(), mode=st.sampled_from(["merge", "mirror"]))
def test_dry_run__never_writes(tmp_path, catalogue_tools, world, mode):
    with built(world):
        source = write_file(tmp_path / "access.json", world.document())
        before = set(ToolAccess.objects.values_list("user__username", "tool__key", "granted_at"))
        snapshots = AccessSnapshot.objects.count()

        with CaptureQueriesContext(connection) as queries:
            result = import_access(source, "--mode", mode, "--dry-run")

        writes = [query["sql"] for query in queries.captured_queries if WRITE_STATEMENT.match(query["sql"])]
        assert writes == []
        assert set(ToolAccess.objects.values_list("user__username", "tool__key", "granted_at")) == before
        assert AccessSnapshot.objects.count() == snapshots
        assert result["status"] == "dry-run"


@PROPERTIES
@given(world=worlds(variants=["different", "same"]), mode=st.sampled_from(["merge", "mirror"]))
def test_import__mismatched_username_and_email_is_never_granted(tmp_path, catalogue_tools, world, mode):
    with built(world):
        before = grant_pairs()

        import_access(write_file(tmp_path / "access.json", world.document()), "--mode", mode)

        gained = grant_pairs() - before
        mismatched = {
            (username, key)
            for key, users in world.file_tools.items()
            for username, email in users
            if not world.matched(username, email)
        }
        assert not gained & mismatched


@PROPERTIES
@given(world=worlds(), mode=st.sampled_from(["merge", "mirror"]))
def test_import__reports_every_unmatched_user_and_unknown_tool(tmp_path, catalogue_tools, world, mode):
    with built(world):
        result = import_access(write_file(tmp_path / "access.json", world.document()), "--mode", mode)

        reported_users = {(user["username"], user["email"]) for user in result["plan"]["unmatched_users"]}
        expected_users = {
            (username, email)
            for key, users in world.file_tools.items()
            if key != GHOST_TOOL
            for username, email in users
            if not world.matched(username, email)
        }
        assert reported_users == expected_users
        assert [tool["key"] for tool in result["plan"]["unknown_tools"]] == (
            [GHOST_TOOL] if GHOST_TOOL in world.file_tools else []
        )


@settings(PROPERTIES, max_examples=40)
@given(world=worlds(), data=corrupted_bytes())
def test_import__damaged_file_is_refused_and_writes_nothing(tmp_path, catalogue_tools, world, data):
    with built(world):
        before = set(ToolAccess.objects.values_list("user__username", "tool__key", "granted_at"))
        source = tmp_path / "damaged.json"
        source.write_bytes(data)

        try:
            with CaptureQueriesContext(connection) as queries:
                import_access(source)
        except CommandError as error:
            assert "\n" not in str(error)
            assert [q["sql"] for q in queries.captured_queries if WRITE_STATEMENT.match(q["sql"])] == []
            assert set(ToolAccess.objects.values_list("user__username", "tool__key", "granted_at")) == before
            assert AccessSnapshot.objects.count() == 0
