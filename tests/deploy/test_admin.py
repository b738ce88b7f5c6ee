"""Access snapshots in the admin (deploy/admin.py)."""
import gzip
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from deploy.models import AccessSnapshot
from deploy.snapshots import take_access_snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def test_snapshot_list_shows_ids_reasons_and_counts(admin_client, make_user, grant, catalogue_tools):
    grant(make_user("alice"), catalogue_tools["email-templates"])
    snapshot = take_access_snapshot("before import_access")

    response = admin_client.get("/admin/deploy/accesssnapshot/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "before import_access" in page
    assert f"access-snapshot-{snapshot.pk}.json.gz" in page


def test_snapshot_list_query_count_does_not_grow_with_snapshots(admin_client, settings):
    settings.ACCESS_SNAPSHOT_KEEP = 50
    take_access_snapshot("one")
    with CaptureQueriesContext(connection) as few:
        admin_client.get("/admin/deploy/accesssnapshot/")
    for index in range(10):
        take_access_snapshot(f"more {index}")
    with CaptureQueriesContext(connection) as many:
        admin_client.get("/admin/deploy/accesssnapshot/")

    assert len(many) == len(few)


def test_snapshot_download_is_the_stored_access_file(admin_client, make_user, grant, catalogue_tools):
    grant(make_user("alice"), catalogue_tools["team-directory"])
    snapshot = take_access_snapshot("manual")

    response = admin_client.get(f"/admin/deploy/accesssnapshot/{snapshot.pk}/download/")

    document = json.loads(gzip.decompress(response.content))
    team_directory = next(tool for tool in document["tools"] if tool["key"] == "team-directory")
    assert team_directory["users"] == [{"email": "alice@example.com", "username": "alice"}]


def test_snapshots_cannot_be_added_or_changed_in_admin(admin_client):
    snapshot = take_access_snapshot("manual")

    assert admin_client.get("/admin/deploy/accesssnapshot/add/").status_code == 403
    admin_client.post(f"/admin/deploy/accesssnapshot/{snapshot.pk}/change/", {"reason": "edited"})
    assert AccessSnapshot.objects.get(pk=snapshot.pk).reason == "manual"


def test_snapshot_download_needs_staff(client, make_user):
    snapshot = take_access_snapshot("manual")
    client.force_login(make_user("alice"))

    response = client.get(f"/admin/deploy/accesssnapshot/{snapshot.pk}/download/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
