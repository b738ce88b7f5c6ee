"""Access snapshots: taking, keeping and restoring them (deploy/snapshots.py)."""
import gzip
import hashlib

import pytest

from deploy.access_file import AccessFileError, AccessFileTool, AccessFileUser, export_access_document
from deploy.models import AccessSnapshot
from deploy.snapshots import restore_access_snapshot, snapshot_access_file, take_access_snapshot
from tests.conftest import grant_pairs
from tests.deploy.access_support import database_fingerprint
from tools.models import ToolAccess

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(make_user):
    return {name: make_user(name) for name in ("alice", "bob", "carol")}


def test_take__stores_the_gzipped_access_file_of_every_database_tool(people, catalogue_tools, make_tool, grant, settings):
    settings.OMNITOOL_ENV = "staging"
    grant(people["alice"], catalogue_tools["team-directory"])
    grant(people["bob"], make_tool("legacy-tool"))

    snapshot = take_access_snapshot("before test")

    document = gzip.decompress(snapshot.document)
    assert document == export_access_document(all_database_tools=True)
    assert b'"legacy-tool"' in document
    assert (snapshot.environment, snapshot.reason, snapshot.tool_count, snapshot.grant_count) == ("staging", "before test", 4, 2)
    assert snapshot.sha256 == hashlib.sha256(document).hexdigest()


def test_take__keeps_the_newest_access_snapshot_keep(settings):
    settings.ACCESS_SNAPSHOT_KEEP = 3

    taken = [take_access_snapshot(f"number {n}") for n in range(5)]

    assert list(AccessSnapshot.objects.values_list("reason", flat=True)) == ["number 4", "number 3", "number 2"]
    assert taken[-1] == AccessSnapshot.objects.latest()


def test_snapshot_access_file__reads_the_grants_back(people, catalogue_tools, grant):
    grant(people["alice"], catalogue_tools["team-directory"])
    snapshot = take_access_snapshot("test")

    access_file = snapshot_access_file(snapshot)

    assert access_file.source == f"access snapshot #{snapshot.pk}"
    assert AccessFileTool("team-directory", "Team Directory", (AccessFileUser("alice", "alice@example.com"),)) in access_file.tools


def test_snapshot_access_file__a_damaged_snapshot_is_an_error(people):
    snapshot = take_access_snapshot("test")
    snapshot.document = gzip.compress(b'{"tampered": true}')

    with pytest.raises(AccessFileError, match=rf"^access snapshot #{snapshot.pk}: checksum mismatch"):
        snapshot_access_file(snapshot)


def test_restore__makes_the_grants_exactly_the_snapshots(people, catalogue_tools, make_tool, grant):
    grant(people["alice"], catalogue_tools["team-directory"])
    grant(people["bob"], catalogue_tools["invoice-generator"])
    snapshot = take_access_snapshot("before")
    expected = grant_pairs()
    ToolAccess.objects.filter(user=people["alice"]).delete()
    grant(people["carol"], catalogue_tools["invoice-generator"])
    grant(people["carol"], make_tool("new-tool"))  # a tool created after the snapshot

    plan = restore_access_snapshot(snapshot)

    assert grant_pairs() == expected
    assert (plan.to_add_count, plan.to_remove_count) == (1, 2)


def test_restore__stores_a_snapshot_of_the_state_it_replaces(people, catalogue_tools, grant):
    snapshot = take_access_snapshot("empty")
    grant(people["alice"], catalogue_tools["team-directory"])
    replaced = export_access_document(all_database_tools=True)

    restore_access_snapshot(snapshot)

    newest = AccessSnapshot.objects.latest()
    assert newest.reason == f"before restoring access snapshot #{snapshot.pk}"
    assert gzip.decompress(newest.document) == replaced


def test_restore__of_the_current_state_writes_nothing(people, catalogue_tools, grant):
    grant(people["alice"], catalogue_tools["team-directory"])
    snapshot = take_access_snapshot("now")
    before = database_fingerprint()

    plan = restore_access_snapshot(snapshot)

    assert not plan.has_changes
    assert database_fingerprint() == before


def test_restore__reports_users_deleted_since_as_unmatched(people, catalogue_tools, grant):
    grant(people["carol"], catalogue_tools["team-directory"])
    snapshot = take_access_snapshot("with carol")
    people["carol"].delete()

    plan = restore_access_snapshot(snapshot)

    assert [(user.username, user.reason) for user in plan.unmatched_users] == [("carol", "unknown user")]
