"""Crash safety on PostgreSQL: `manage.py import_access` killed with SIGKILL in
the middle of a large apply leaves the grants table exactly as it was, and the
next import succeeds.

Killing "in the middle" is made deterministic: the test holds, in its own open
transaction, the grant that the import writes last. The import plans (that row
is not committed, so the plan includes it), stores its snapshot, writes its
first batches of grants, and then waits on that row inside its last INSERT.
pg_stat_activity shows it waiting there; the test SIGKILLs the process, lets
its own transaction go, and waits for the import's server backend to end.
"""
import json
import os
import signal
import time

import pytest

from deploy.access import WRITE_BATCH_SIZE
from tests.hardening.scratch_database import ScratchDatabase, scratch_database

pytestmark = [pytest.mark.postgresql, pytest.mark.slow]

USER_COUNT = 2_000
TOOL_COUNT = 100  # file grants: USER_COUNT x TOOL_COUNT = 200,000
GRANTS_CHECKSUM = (
    "SELECT count(*), md5(coalesce(string_agg(user_id || ':' || tool_id, ',' ORDER BY user_id, tool_id), '')) "
    "FROM tools_toolaccess"
)
TABLE_SIZE = "SELECT pg_relation_size('tools_toolaccess')"
IMPORT_WAITING = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
    "AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO \"tools_toolaccess\"%%'"
)


def populate(database: ScratchDatabase) -> None:
    """USER_COUNT users, TOOL_COUNT tools, and a tenth of the file's grants already there."""
    database.execute(
        "INSERT INTO accounts_user (password, is_superuser, username, first_name, last_name, email, "
        "is_staff, is_active, date_joined) "
        "SELECT '!', false, 'user' || lpad(i::text, 5, '0'), '', '', 'user' || i || '@example.com', "
        "false, true, now() FROM generate_series(1, %s) AS i",
        [USER_COUNT],
    )
    database.execute(
        "INSERT INTO tools_tool (key, name, description) "
        "SELECT 'bulk-' || lpad(i::text, 3, '0'), 'Bulk tool ' || i, '' FROM generate_series(1, %s) AS i",
        [TOOL_COUNT],
    )
    database.execute(
        "INSERT INTO tools_toolaccess (user_id, tool_id, granted_at) "
        "SELECT u.id, t.id, now() FROM accounts_user u CROSS JOIN tools_tool t "
        "WHERE t.key LIKE 'bulk-%%' AND (u.id + t.id) %% 10 = 1"
    )


def write_access_file(path, database: ScratchDatabase) -> None:
    users = database.query("SELECT username, email FROM accounts_user ORDER BY username")
    listed = [{"username": username, "email": email} for username, email in users]
    document = {
        "schema": "omnitool.access/v1",
        "environment": "staging",
        "tools": [
            {"key": f"bulk-{index:03d}", "name": f"Bulk tool {index}", "users": listed}
            for index in range(1, TOOL_COUNT + 1)
        ],
    }
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


def wait_for(condition, timeout: float, what: str, process=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        if process is not None and process.poll() is not None:
            stdout, stderr = process.communicate()
            pytest.fail(f"import ended ({process.returncode}) before {what}:\n{stdout}\n{stderr}")
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def database():
    with scratch_database("crash") as database:
        populate(database)
        yield database


def test_import_killed_mid_apply__leaves_grants_exactly_as_before_and_next_import_succeeds(database, tmp_path):
    source = tmp_path / "access.json"
    write_access_file(source, database)
    (before_count, before_checksum), = database.query(GRANTS_CHECKSUM)
    (snapshots_before,), = database.query("SELECT count(*) FROM deploy_accesssnapshot")
    to_add = USER_COUNT * TOOL_COUNT - before_count
    assert to_add > 2 * WRITE_BATCH_SIZE, "the held row must sit past the first batches"

    # Hold the grant the import writes last: the last tool by key, the highest user id.
    holder = database.connect(autocommit=False)
    with holder.cursor() as cursor:
        cursor.execute(
            "INSERT INTO tools_toolaccess (user_id, tool_id, granted_at) "
            "SELECT (SELECT max(id) FROM accounts_user), (SELECT id FROM tools_tool WHERE key = %s), now()",
            [f"bulk-{TOOL_COUNT:03d}"],
        )
    (size_before,), = database.query(TABLE_SIZE)
    process = database.popen("import_access", str(source), "--noinput")
    try:
        (backend,), = wait_for(
            lambda: database.query(IMPORT_WAITING), 240, "the import to wait inside its INSERT", process
        )
        (size_during,), = database.query(TABLE_SIZE)
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        holder.rollback()
        holder.close()
    wait_for(
        lambda: not database.query("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [backend]),
        60,
        "the killed import's backend to end",
    )

    assert process.returncode == -signal.SIGKILL
    # Killed mid-apply: its earlier batches had already grown the table (a grant's row is >= 32 bytes).
    assert size_during - size_before >= 2 * WRITE_BATCH_SIZE * 32
    assert database.query(GRANTS_CHECKSUM) == [(before_count, before_checksum)]
    assert database.query("SELECT count(*) FROM deploy_accesssnapshot") == [(snapshots_before,)]

    rerun = database.manage("import_access", str(source), "--noinput", "--format", "json")
    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout)
    assert (result["status"], result["added"], result["removed"]) == ("applied", to_add, 0)
    assert database.query(
        "SELECT count(*) FROM tools_toolaccess t JOIN tools_tool tool ON tool.id = t.tool_id "
        "WHERE tool.key LIKE 'bulk-%%'"
    ) == [(USER_COUNT * TOOL_COUNT,)]
    assert database.query("SELECT count(*) FROM deploy_accesssnapshot") == [(snapshots_before + 1,)]
