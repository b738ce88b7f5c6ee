"""deploy/release.py and `manage.py release` (the Procfile's release phase), on sites of their own."""
import json
import re

from tests.deploy.scratch_site import (  # noqa: F401 (fixtures)
    ROOT,
    fresh_site,
    migrated_site,
    site_template,
)

FIRST_SUPERUSER = {
    "DJANGO_SUPERUSER_USERNAME": "admin",
    "DJANGO_SUPERUSER_EMAIL": "admin@example.com",
    "DJANGO_SUPERUSER_PASSWORD": "first-release-Pa55word",
}
STEPS = ["access file", "migrate", "catalogue sync", "superuser", "import_access", "verify_deploy"]
TABLE_NAMES = "from django.db import connection; print(sorted(connection.introspection.table_names()))"


def test_procfile__runs_release_in_the_release_phase():
    assert "release: python manage.py release\n" in (ROOT / "Procfile").read_text()


def test_release__on_a_fresh_database_yields_a_verified_deploy(fresh_site):
    result = fresh_site.manage("release", "--format", "json", **FIRST_SUPERUSER)

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert [(step["name"], step["status"]) for step in document["steps"]] == [(name, "ok") for name in STEPS]
    assert document["steps"][3]["detail"] == "created superuser admin from DJANGO_SUPERUSER_USERNAME"
    assert "0 failed" in document["steps"][-1]["output"]
    verified = json.loads(fresh_site.ok("verify_deploy", "--format", "json").stdout)
    assert verified["ok"] is True
    # The access file grants admin invoice-generator: the import ran after the superuser existed.
    invoice_generator = next(
        tool for tool in json.loads(fresh_site.exported_access())["tools"] if tool["key"] == "invoice-generator"
    )
    assert invoice_generator["users"] == [{"email": "admin@example.com", "username": "admin"}]


def test_release__with_an_invalid_access_file_exits_non_zero_before_anything_is_written(fresh_site, tmp_path):
    access_file = tmp_path / "access.json"
    access_file.write_text('{"schema": "omnitool.access/v1",\n "tools": [}\n')

    result = fresh_site.manage("release", ACCESS_FILE=str(access_file), BACKUP_ON_RELEASE="1", **FIRST_SUPERUSER)

    assert result.returncode == 1
    assert result.stderr.startswith(f"CommandError: release stopped at access file: {access_file}:2:")
    assert result.stderr.rstrip().endswith(
        "not run: backup, migrate, catalogue sync, superuser, import_access, verify_deploy."
    )
    assert len(result.stderr.splitlines()) == 1
    assert fresh_site.shell(TABLE_NAMES).strip() == "[]"
    assert not fresh_site.backup_dir.exists()


def test_release__with_backup_on_release_prints_each_step_and_backs_up_before_migrating(migrated_site):
    result = migrated_site.ok("release", BACKUP_ON_RELEASE="1")

    headings = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert headings == [f"[{number}/7] {name}" for number, name in enumerate(["access file", "backup", *STEPS[1:]], 1)]
    (backup,) = migrated_site.backups()
    assert backup["label"] == "before-release"
    assert re.search(rf"^\[2/7\] backup\n  ok \(\d+\.\d s\): backup {backup['id']} \(\d+ bytes\)$", result.stdout, re.M)
    assert result.stdout.splitlines()[-1] == "Release complete in local."


def test_release__stops_at_the_first_failing_step_and_runs_none_after_it(migrated_site, tmp_path):
    not_a_directory = tmp_path / "backups-is-a-file"
    not_a_directory.write_text("")
    migrated_site.backup_dir = not_a_directory
    counts = migrated_site.row_counts()

    result = migrated_site.manage("release", "--backup", "--format", "json")

    assert result.returncode == 1
    assert [(step["name"], step["status"]) for step in json.loads(result.stdout)["steps"]] == [
        ("access file", "ok"),
        ("backup", "failed"),
        *[(name, "not run") for name in STEPS[1:]],
    ]
    assert result.stderr.startswith("CommandError: release stopped at backup: cannot create the backup directory ")
    assert migrated_site.row_counts() == counts
