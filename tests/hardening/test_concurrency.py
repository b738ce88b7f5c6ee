"""Concurrency on PostgreSQL: several imports and the admin's bulk grant at
once end in a consistent state, with no IntegrityError, no deadlock and no lost
grant.

To make them truly overlap, the test holds (in its own open transaction) one
grant that the first import and the bulk grant both write. The first import
stops on it in the middle of its writes, holding the rows it already wrote;
the bulk grant stops on it too, or on the grants lock, and the other imports
queue on the grants lock. Once pg_stat_activity shows all four waiting, the
test lets go and they all run over the same rows. (Before the bulk grant took
the grants lock, it and the first import deadlocked here: each held rows the
other was about to write.)

The bulk grant is `tools.grants.grant_to_all_active_users_except` given a
queryset of tools, as the admin action gives it (in the admin's order: by name,
which here runs opposite to key order, the order imports write in).
"""
import json
import time

import pytest

from tests.hardening.scratch_database import ScratchDatabase, scratch_database

pytestmark = [pytest.mark.postgresql, pytest.mark.slow]

ACTIVE_USERS = 1_500
INACTIVE_USERS = 50
TOOL_COUNT = 20
EXCLUDED = ("user00007", "user01499")  # left out by the admin; files may still grant them
HELD = ("user01000", "conc-10")  # the grant the test holds: the first import and the admin both write it

GRANT_PAIRS = (
    "SELECT u.username, t.key FROM tools_toolaccess a "
    "JOIN accounts_user u ON u.id = a.user_id JOIN tools_tool t ON t.id = a.tool_id"
)
WAITING = (
    "SELECT query FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
    "AND wait_event_type = 'Lock'"
)
BULK_GRANT = (
    "from django.contrib.auth import get_user_model; "
    "from tools.grants import grant_to_all_active_users_except; "
    "from tools.models import Tool; "
    "excluded = get_user_model().objects.filter(username__in={excluded!r}).values_list('pk', flat=True); "
    "result = grant_to_all_active_users_except(Tool.objects.filter(key__startswith='conc-'), list(excluded)); "
    "print(result.total_created)"
)


def username(number: int) -> str:
    return f"user{number:05d}"


def tool_key(number: int) -> str:
    return f"conc-{number:02d}"


def populate(database: ScratchDatabase) -> None:
    database.execute(
        "INSERT INTO accounts_user (password, is_superuser, username, first_name, last_name, email, "
        "is_staff, is_active, date_joined) "
        "SELECT '!', false, 'user' || lpad(i::text, 5, '0'), '', '', 'user' || i || '@example.com', "
        "false, i <= %s, now() FROM generate_series(1, %s) AS i",
        [ACTIVE_USERS, ACTIVE_USERS + INACTIVE_USERS],
    )
    # Names run opposite to keys: conc-01 is "Tool 20", so the admin's name order is reverse key order.
    database.execute(
        "INSERT INTO tools_tool (key, name, description) "
        "SELECT 'conc-' || lpad(i::text, 2, '0'), 'Tool ' || lpad((%s + 1 - i)::text, 2, '0'), '' "
        "FROM generate_series(1, %s) AS i",
        [TOOL_COUNT, TOOL_COUNT],
    )


def access_file(path, tools: range, users: range) -> set[tuple[str, str]]:
    """Write an access file granting `tools` x `users`; return its grants."""
    listed = [{"username": username(number), "email": f"user{number}@example.com"} for number in users]
    document = {
        "schema": "omnitool.access/v1",
        "environment": "staging",
        "tools": [{"key": tool_key(number), "name": f"Tool {number}", "users": listed} for number in tools],
    }
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return {(username(user), tool_key(tool)) for tool in tools for user in users}


@pytest.fixture(scope="module")
def database():
    with scratch_database("concurrency") as database:
        populate(database)
        yield database


def wait_for_waiters(database: ScratchDatabase, processes, count: int, timeout: float = 120) -> None:
    """Until pg_stat_activity shows at least `count` backends waiting on a lock (a row or the grants lock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queries = [query for (query,) in database.query(WAITING)]
        if len(queries) >= count:
            return
        for name, process in processes.items():
            if process.poll() is not None:
                stdout, stderr = process.communicate()
                pytest.fail(f"{name} ended ({process.returncode}) before the race:\n{stdout}\n{stderr}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {count} waiting backends; waiting now: {queries}")


def test_imports_and_admin_bulk_grant_at_once__end_consistent_with_no_lost_grant(database, tmp_path):
    database.execute("TRUNCATE tools_toolaccess, deploy_accesssnapshot")
    first = access_file(tmp_path / "first.json", range(1, TOOL_COUNT + 1), range(1, 1_001))
    second = access_file(tmp_path / "second.json", range(5, TOOL_COUNT + 1), range(500, ACTIVE_USERS + INACTIVE_USERS + 1))
    bulk = {
        (username(user), tool_key(tool))
        for user in range(1, ACTIVE_USERS + 1)
        if username(user) not in EXCLUDED
        for tool in range(1, TOOL_COUNT + 1)
    }
    assert HELD in first and HELD in bulk

    holder = database.connect(autocommit=False)
    with holder.cursor() as cursor:
        cursor.execute(
            "INSERT INTO tools_toolaccess (user_id, tool_id, granted_at) SELECT "
            "(SELECT id FROM accounts_user WHERE username = %s), (SELECT id FROM tools_tool WHERE key = %s), now()",
            HELD,
        )
    processes = {}
    try:
        processes["import first.json"] = database.popen("import_access", str(tmp_path / "first.json"), "--noinput")
        processes["bulk grant"] = database.popen("shell", "-c", BULK_GRANT.format(excluded=EXCLUDED))
        wait_for_waiters(database, processes, 2)
        processes["import second.json"] = database.popen("import_access", str(tmp_path / "second.json"), "--noinput")
        processes["import first.json again"] = database.popen(
            "import_access", str(tmp_path / "first.json"), "--noinput", "--format", "json"
        )
        wait_for_waiters(database, processes, 4)
    finally:
        holder.rollback()
        holder.close()
    outcomes = {name: (process.wait(timeout=180), *process.communicate()) for name, process in processes.items()}

    for name, (returncode, stdout, stderr) in outcomes.items():
        assert returncode == 0, f"{name} exited {returncode}:\n{stdout}\n{stderr}"
        assert "IntegrityError" not in stderr and "deadlock" not in stderr.lower(), f"{name}:\n{stderr}"
    assert set(database.query(GRANT_PAIRS)) == first | second | bulk
    assert database.query("SELECT count(*) FROM tools_toolaccess") == [(len(first | second | bulk),)]
    again = json.loads(outcomes["import first.json again"][1])
    assert (again["status"], again["added"], again["removed"]) == ("unchanged", 0, 0)
