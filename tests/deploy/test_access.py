"""Planning and applying access imports (deploy/access.py)."""
import threading
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

import deploy.access
from deploy.access import EMAIL_DIFFERS, UNKNOWN_USER, UnknownTool, UnmatchedUser, apply_plan, build_plan
from deploy.access_file import AccessFile, AccessFileTool, AccessFileUser, export_access_document, parse_access_file
from deploy.models import AccessSnapshot
from tests.conftest import grant_pairs
from tests.deploy.access_support import access_bytes, access_document, database_fingerprint
from tools.models import Tool, ToolAccess

pytestmark = pytest.mark.django_db


def access_file_of(tools: dict[str, list], **kwargs):
    return parse_access_file(access_bytes(access_document(tools, **kwargs)), source="access.json")


@pytest.fixture
def people(make_user):
    return {name: make_user(name) for name in ("alice", "bob", "carol", "user_a")}


def test_seed_scenario__user_a_stays_excluded_in_the_next_environment(demo_data):
    exported = export_access_document()
    User = get_user_model()
    identities = list(User.objects.order_by("pk").values_list("username", "email"))
    # The next environment: the same people, created there with other ids, and no grants yet.
    ToolAccess.objects.all().delete()
    User.objects.all().delete()
    User.objects.bulk_create([User(username=name, email=email) for name, email in reversed(identities)])

    result = apply_plan(build_plan(parse_access_file(exported)))

    invoice_users = {username for username, key in grant_pairs() if key == "invoice-generator"}
    assert invoice_users == {"admin", "alice", "bob", "carol", "dave"}
    assert result.added == 10
    assert export_access_document() == exported


def test_plan__lists_grants_to_add_per_tool_and_unchanged(people, catalogue_tools, grant):
    grant(people["alice"], catalogue_tools["invoice-generator"])

    plan = build_plan(access_file_of({"invoice-generator": ["alice", "bob"], "team-directory": ["carol"]}))

    assert plan.grants_to_add() == [("invoice-generator", "bob"), ("team-directory", "carol")]
    assert (plan.to_add_count, plan.to_remove_count, plan.unchanged_count) == (2, 0, 1)
    assert plan.has_changes


def test_plan__writes_nothing(people, catalogue_tools, grant):
    grant(people["alice"], catalogue_tools["team-directory"])
    before = database_fingerprint()

    build_plan(access_file_of({"invoice-generator": ["alice", "bob"]}), mode="mirror")

    assert database_fingerprint() == before


def test_plan__mismatched_email_is_reported_and_never_granted(people):
    access_file = access_file_of({"invoice-generator": [("alice", "alice@elsewhere.example"), "bob"]})

    plan = build_plan(access_file)
    apply_plan(plan)

    assert plan.unmatched_users == [
        UnmatchedUser("alice", "alice@elsewhere.example", EMAIL_DIFFERS, ("invoice-generator",))
    ]
    assert grant_pairs() == {("bob", "invoice-generator")}


def test_plan__email_matches_case_insensitively(people):
    plan = build_plan(access_file_of({"invoice-generator": [("alice", "ALICE@Example.COM")]}))

    assert plan.grants_to_add() == [("invoice-generator", "alice")]
    assert plan.unmatched_users == []


def test_plan__unknown_users_and_tools_are_reported_and_skipped(people):
    plan = build_plan(access_file_of({"invoice-generator": ["alice", "zoe"], "retired-tool": ["alice", "bob"]}))

    assert plan.unmatched_users == [UnmatchedUser("zoe", "zoe@example.com", UNKNOWN_USER, ("invoice-generator",))]
    assert plan.unknown_tools == [UnknownTool("retired-tool", "Retired Tool", 2)]
    assert plan.grants_to_add() == [("invoice-generator", "alice")]
    assert plan.has_unmatched


def test_plan__as_dict_is_the_whole_plan(people, catalogue_tools, grant):
    grant(people["bob"], catalogue_tools["team-directory"])

    plan = build_plan(access_file_of({"team-directory": ["alice", "zoe"]}), mode="mirror")

    assert plan.as_dict() == {
        "mode": "mirror",
        "source": "access.json",
        "environment": "local",
        "has_changes": True,
        "summary": {"to_add": 1, "to_remove": 1, "unchanged": 0, "unmatched_users": 1, "unknown_tools": 0},
        "tools": [
            {"key": "team-directory", "name": "Team Directory", "to_add": ["alice"], "to_remove": ["bob"], "unchanged": 0}
        ],
        "unmatched_users": [
            {"username": "zoe", "email": "zoe@example.com", "reason": "unknown user", "tools": ["team-directory"]}
        ],
        "unknown_tools": [],
    }


def test_merge__keeps_grants_the_file_lacks(people, catalogue_tools, grant):
    grant(people["carol"], catalogue_tools["invoice-generator"])

    apply_plan(build_plan(access_file_of({"invoice-generator": ["alice"]}), mode="merge"))

    assert grant_pairs() == {("alice", "invoice-generator"), ("carol", "invoice-generator")}


def test_mirror__removes_grants_of_listed_tools_that_the_file_lacks(people, catalogue_tools, grant):
    grant(people["carol"], catalogue_tools["invoice-generator"])
    grant(people["carol"], catalogue_tools["team-directory"])

    result = apply_plan(build_plan(access_file_of({"invoice-generator": ["alice"]}), mode="mirror"))

    # team-directory is not listed in the file, so mirror leaves it alone.
    assert grant_pairs() == {("alice", "invoice-generator"), ("carol", "team-directory")}
    assert (result.added, result.removed) == (1, 1)


def test_mirror__revokes_a_grant_held_by_a_username_whose_email_differs(people, catalogue_tools, grant):
    grant(people["alice"], catalogue_tools["invoice-generator"])

    plan = build_plan(access_file_of({"invoice-generator": [("alice", "alice@elsewhere.example")]}), mode="mirror")

    assert plan.grants_to_remove() == [("invoice-generator", "alice")]


def test_apply__stores_a_snapshot_of_the_state_before(people, catalogue_tools, grant):
    grant(people["carol"], catalogue_tools["team-directory"])
    before = export_access_document(all_database_tools=True)

    result = apply_plan(build_plan(access_file_of({"invoice-generator": ["alice"]})), snapshot_reason="test import")

    assert result.snapshot == AccessSnapshot.objects.get()
    assert (result.snapshot.reason, result.snapshot.grant_count) == ("test import", 1)
    from deploy.snapshots import snapshot_access_file

    assert access_bytes_of(snapshot_access_file(result.snapshot)) == before


def access_bytes_of(access_file):
    return access_bytes(
        {
            "schema": "omnitool.access/v1",
            "environment": access_file.environment,
            "tools": [
                {"key": t.key, "name": t.name, "users": [{"username": u.username, "email": u.email} for u in t.users]}
                for t in access_file.tools
            ],
        }
    )


def test_apply__twice_changes_nothing_the_second_time(people):
    access_file = access_file_of({"invoice-generator": ["alice", "bob"]})
    apply_plan(build_plan(access_file))
    before = database_fingerprint()

    second_plan = build_plan(access_file)
    result = apply_plan(second_plan)

    assert not second_plan.has_changes
    assert (result.added, result.removed, result.snapshot) == (0, 0, None)
    assert database_fingerprint() == before


def test_apply__a_no_op_runs_no_write_and_uses_no_sequence_value(people):
    access_file = access_file_of({"invoice-generator": ["alice", "bob"]})
    apply_plan(build_plan(access_file))

    with CaptureQueriesContext(connection) as queries:
        apply_plan(build_plan(access_file))

    statements = [query["sql"].split()[0].upper() for query in queries.captured_queries]
    assert not {"INSERT", "UPDATE", "DELETE"} & set(statements)


def test_apply__re_plans_under_the_lock(people, catalogue_tools, grant):
    plan = build_plan(access_file_of({"invoice-generator": ["alice", "bob"]}))
    grant(people["alice"], catalogue_tools["invoice-generator"])  # someone else got there first

    result = apply_plan(plan)

    assert result.added == 1
    assert result.plan.grants_to_add() == [("invoice-generator", "bob")]


def test_apply__an_exception_halfway_leaves_the_table_unchanged(people, catalogue_tools, grant, monkeypatch):
    grant(people["carol"], catalogue_tools["team-directory"])
    before = database_fingerprint()
    monkeypatch.setattr(deploy.access, "WRITE_BATCH_SIZE", 2)
    grants_seen_by_batch = []

    def fail_on_the_second_batch(writer, count):
        grants_seen_by_batch.append(ToolAccess.objects.count())
        if len(grants_seen_by_batch) == 2:
            raise RuntimeError("disk full")

    monkeypatch.setattr(deploy.access.GrantWriter, "_advance", fail_on_the_second_batch)
    plan = build_plan(access_file_of({"invoice-generator": ["alice", "bob", "carol", "user_a"]}))

    with pytest.raises(RuntimeError, match="disk full"):
        apply_plan(plan)

    assert grants_seen_by_batch == [3, 5]  # two batches were written inside the transaction
    assert database_fingerprint() == before


def test_apply__query_count_is_the_same_for_100_and_1000_grants(django_user_model):
    def import_queries(user_count: int, tool_count: int) -> int:
        ToolAccess.objects.all().delete()
        django_user_model.objects.all().delete()
        Tool.objects.filter(key__startswith="bulk-").delete()
        django_user_model.objects.bulk_create(
            [django_user_model(username=f"user{n:04}", email=f"user{n:04}@example.com") for n in range(user_count)]
        )
        keys = [f"bulk-{n:02}" for n in range(tool_count)]
        Tool.objects.bulk_create([Tool(key=key, name=key) for key in keys])
        access_file = access_file_of({key: [f"user{n:04}" for n in range(user_count)] for key in keys})
        with CaptureQueriesContext(connection) as queries:
            result = apply_plan(build_plan(access_file))
        assert result.added == user_count * tool_count
        return len(queries.captured_queries)

    assert import_queries(10, 10) == import_queries(100, 10)


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_two_imports_started_at_once_both_succeed_and_apply_once(make_user):
    for name in ("alice", "bob", "carol"):
        make_user(name)
    access_file = access_file_of({"invoice-generator": ["alice", "bob"], "team-directory": ["carol"]})
    start = threading.Barrier(2)
    results, errors = [], []

    def run_import():
        try:
            plan = build_plan(access_file)
            start.wait(timeout=10)
            results.append(apply_plan(plan))
        except Exception as error:  # noqa: BLE001 - any error fails the test below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run_import) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert sorted(result.added for result in results) == [0, 3]
    assert grant_pairs() == {("alice", "invoice-generator"), ("bob", "invoice-generator"), ("carol", "team-directory")}
    assert AccessSnapshot.objects.count() == 1  # the second import found nothing to do under the lock


def test_apply__fills_each_write_batch_across_tools(people, monkeypatch):
    monkeypatch.setattr(deploy.access, "WRITE_BATCH_SIZE", 3)
    access_file = access_file_of({"invoice-generator": ["alice", "bob"], "team-directory": ["alice", "bob", "carol"]})

    with CaptureQueriesContext(connection) as queries:
        result = apply_plan(build_plan(access_file))

    inserts = [query for query in queries.captured_queries if query["sql"].startswith('INSERT INTO "tools_toolaccess"')]
    assert (result.added, len(inserts)) == (5, 2)
    assert grant_pairs() == {
        ("alice", "invoice-generator"), ("bob", "invoice-generator"),
        ("alice", "team-directory"), ("bob", "team-directory"), ("carol", "team-directory"),
    }


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_apply__a_grant_the_admin_commits_meanwhile_restarts_the_import_instead_of_failing(make_user, catalogue_tools):
    alice, _ = make_user("alice"), make_user("bob")
    access_file = access_file_of({"invoice-generator": ["alice", "bob"]})
    held, release = threading.Event(), threading.Event()
    results, errors = [], []

    def admin_grants_alice():
        try:
            with transaction.atomic():
                ToolAccess.objects.create(user=alice, tool=catalogue_tools["invoice-generator"])
                held.set()
                release.wait(timeout=20)
        finally:
            connections.close_all()

    def run_import():
        try:
            results.append(apply_plan(build_plan(access_file)))
        except Exception as error:  # noqa: BLE001 - any error fails the test below
            errors.append(error)
        finally:
            connections.close_all()

    admin = threading.Thread(target=admin_grants_alice)
    admin.start()
    held.wait(timeout=10)
    importer = threading.Thread(target=run_import)
    importer.start()
    wait_until_an_insert_waits_on_a_lock()
    release.set()
    admin.join(timeout=20)
    importer.join(timeout=20)

    assert errors == []
    assert results[0].added == 1
    assert grant_pairs() == {("alice", "invoice-generator"), ("bob", "invoice-generator")}
    assert AccessSnapshot.objects.count() == 1  # the first attempt's snapshot went with its rollback


def wait_until_an_insert_waits_on_a_lock(timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO %%'"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)
    pytest.fail("the import never waited on the admin's uncommitted grant")


def test_plan__reports_each_unmatched_user_once_with_every_tool_naming_them(people):
    access_file = AccessFile(
        environment="local",
        source="built in code",
        tools=(
            AccessFileTool("invoice-generator", "Invoice Generator", (AccessFileUser("zoe", "zoe@example.com"),)),
            AccessFileTool("team-directory", "Team Directory", (AccessFileUser("zoe", "zoe@example.com"),)),
        ),
    )

    plan = build_plan(access_file)

    assert plan.unmatched_users == [
        UnmatchedUser("zoe", "zoe@example.com", UNKNOWN_USER, ("invoice-generator", "team-directory"))
    ]
