"""`verify_deploy` (deploy/verify.py, deploy/management/commands/verify_deploy.py).

A healthy deployment passes every check; each check then fails on its own
fault and the output names it.
"""
import json
import os
import re
import socket
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from deploy.access_file import export_access_document
from tools import catalogue as tool_catalogue
from tools.catalogue import CatalogueTool
from tools.models import Tool, ToolAccess

ROOT = Path(__file__).resolve().parents[2]
CHECK_NAMES = [
    "database",
    "migrations",
    "catalogue",
    "grant-targets",
    "access-file",
    "superuser",
    "static-manifest",
    "deploy-checks",
]
MANIFEST_STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}


@pytest.fixture(scope="module")
def collected_static(tmp_path_factory) -> Path:
    """A real collectstatic (manifest storage) into a directory shared by this module's tests."""
    static_root = tmp_path_factory.mktemp("staticfiles")
    with override_settings(STATIC_ROOT=static_root, STORAGES=MANIFEST_STORAGES):
        call_command("collectstatic", "--noinput", verbosity=0)
    return static_root


@pytest.fixture
def access_file(tmp_path, settings) -> Path:
    """Where the access file lives; `export_grants()` writes the database's grants to it."""
    path = tmp_path / "access.json"
    settings.ACCESS_FILE = path
    return path


def export_grants(path: Path) -> None:
    path.write_bytes(export_access_document())


@pytest.fixture
def deployment(demo_data, access_file, settings, collected_static):
    """A healthy deployment: migrated, demo users and grants, the access file exported from them, static collected."""
    settings.STORAGES = MANIFEST_STORAGES
    settings.STATIC_ROOT = collected_static
    export_grants(access_file)
    return access_file


def verify(*arguments: str) -> tuple[dict, CommandError | None]:
    """Run verify_deploy --format json; return the document and the CommandError it raised, if any."""
    stdout = StringIO()
    try:
        call_command("verify_deploy", *arguments, "--format", "json", stdout=stdout)
        error = None
    except CommandError as raised:
        error = raised
    return json.loads(stdout.getvalue()), error


def verify_text(*arguments: str, verbosity: int = 1) -> tuple[list[str], CommandError | None]:
    stdout = StringIO()
    try:
        call_command("verify_deploy", *arguments, verbosity=verbosity, no_color=True, stdout=stdout)
        error = None
    except CommandError as raised:
        error = raised
    return stdout.getvalue().splitlines(), error


def grant_by_hand(username: str, key: str) -> None:
    ToolAccess.objects.create(user=get_user_model().objects.get(username=username), tool=Tool.objects.get(key=key))


def statuses(document: dict) -> dict[str, str]:
    return {check["name"]: check["status"] for check in document["checks"]}


def check(document: dict, name: str) -> dict:
    return next(item for item in document["checks"] if item["name"] == name)


def only_failure(document: dict, error: CommandError | None, name: str) -> dict:
    """Assert that `name` is the one failed check and the error names it; return that check."""
    assert {key: value for key, value in statuses(document).items() if value == "fail"} == {name: "fail"}
    assert document["ok"] is False
    assert str(error) == f"1 of 8 checks failed: {name}."
    return check(document, name)


# --- healthy -------------------------------------------------------------------------------------


def test_verify_deploy__a_healthy_deployment_passes_every_check(deployment):
    document, error = verify()

    assert error is None
    assert document["ok"] is True
    assert document["environment"] == "local"
    assert list(statuses(document).items()) == [(name, "pass") for name in CHECK_NAMES]


def test_verify_deploy__prints_a_checklist_and_a_summary_line(deployment):
    lines, error = verify_text()

    assert error is None
    assert [re.sub(r"\s{2,}.*", "", line) for line in lines[:8]] == [
        f"{name} {'.' * (31 - len(name))} ok" for name in CHECK_NAMES
    ]
    assert "access-file .................... ok    access.json: 10 grants on 3 tools, all applied, none extra" in lines
    assert "superuser ...................... ok    active superuser: admin" in lines
    assert re.fullmatch(r"8 checks: 8 ok, 0 warn, 0 failed in \d+\.\d\d s", lines[8])
    assert len(lines) == 9


def test_verify_deploy__json_is_one_document_with_name_status_and_detail_per_check(deployment):
    document, _ = verify()

    assert set(document) >= {"ok", "environment", "checks"}
    assert all(set(item) >= {"name", "status", "detail", "seconds"} for item in document["checks"])
    assert check(document, "catalogue")["detail"] == "3 tools, as declared"


def test_verify_deploy__verbosity_0_prints_nothing_when_healthy(deployment):
    lines, error = verify_text(verbosity=0)

    assert (lines, error) == ([], None)


def test_verify_deploy__list_names_the_checks_in_order_and_runs_none(db):
    stdout = StringIO()

    with CaptureQueriesContext(connection) as queries:
        call_command("verify_deploy", "--list", stdout=stdout)

    assert [line.split()[0] for line in stdout.getvalue().splitlines()] == CHECK_NAMES
    assert len(queries) == 0


def test_verify_deploy__check_runs_only_the_named_checks(deployment):
    document, _ = verify("--check", "superuser", "--check", "database")

    assert list(statuses(document)) == ["database", "superuser"]


def test_verify_deploy__an_unknown_check_name_is_a_one_line_error(db):
    with pytest.raises(CommandError, match=r"^unknown check 'superusers'; the checks are: database, migrations, "):
        call_command("verify_deploy", "--check", "superusers")


def test_verify_deploy__appends_a_markdown_table_to_the_github_step_summary(deployment, tmp_path, monkeypatch):
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    verify()

    lines = summary.read_text().splitlines()
    assert lines[0] == "### verify_deploy (local): passed"
    assert lines[2:4] == ["| Check | Status | Detail |", "|---|---|---|"]
    assert [line.split("|")[1].strip() for line in lines[4:12]] == [f"`{name}`" for name in CHECK_NAMES]


# --- each check fails on its own fault ------------------------------------------------------------


def test_verify_deploy__an_unapplied_migration_fails_migrations_and_names_it(deployment):
    MigrationRecorder(connection).migration_qs.filter(app="tools", name="0003_remove_legacy_reports").delete()

    document, error = verify()

    failed = only_failure(document, error, "migrations")
    assert failed["detail"] == "1 unapplied migration: tools.0003_remove_legacy_reports; run `manage.py migrate`"


def test_verify_deploy__a_tool_renamed_in_the_database_by_hand_is_a_name_mismatch_naming_the_tool(deployment):
    Tool.objects.filter(key="invoice-generator").update(name="Invoices (old)")

    document, error = verify()

    failed = only_failure(document, error, "catalogue")
    assert failed["detail"] == (
        "1 difference: tool name mismatch: invoice-generator is 'Invoices (old)' in the database, "
        "'Invoice Generator' in the catalogue"
    )


def test_verify_deploy__a_key_renamed_in_code_without_a_migration_is_a_key_mismatch(deployment, monkeypatch):
    renamed = tuple(
        CatalogueTool("invoices", tool.name, tool.description, tool.view) if tool.key == "invoice-generator" else tool
        for tool in tool_catalogue.CATALOGUE
    )
    monkeypatch.setattr(tool_catalogue, "CATALOGUE", renamed)

    document, _ = verify("--check", "catalogue")

    assert check(document, "catalogue")["status"] == "fail"
    assert check(document, "catalogue")["specifics"] == [
        "tool key mismatch: 'Invoice Generator' is 'invoice-generator' in the database, 'invoices' in the catalogue; "
        "write a RenameTool data migration"
    ]


def test_verify_deploy__grants_on_a_tool_the_catalogue_lacks_fail_grant_targets(deployment, make_tool, grant):
    legacy = make_tool("legacy-reports", "Legacy Reports")
    grant(get_user_model().objects.get(username="alice"), legacy)

    document, _ = verify()

    assert check(document, "grant-targets") == {
        **check(document, "grant-targets"),
        "status": "fail",
        "detail": "1 grant on legacy-reports (Legacy Reports), which the catalogue lacks",
    }
    assert check(document, "catalogue")["status"] == "fail"


def test_verify_deploy__grants_on_a_duplicate_of_a_catalogue_tool_fail_grant_targets_naming_both(
    deployment, make_tool, grant
):
    twin = make_tool("invoice-generator-copy", "invoice generator")
    grant(get_user_model().objects.get(username="bob"), twin)

    document, _ = verify("--check", "grant-targets")

    assert check(document, "grant-targets")["status"] == "fail"
    assert check(document, "grant-targets")["specifics"] == [
        "1 grant on invoice-generator-copy (invoice generator), a duplicate of invoice-generator (Invoice Generator)",
    ]


def test_verify_deploy__a_grant_of_the_file_missing_in_the_database_fails_access_file(deployment):
    ToolAccess.objects.filter(user__username="bob", tool__key="email-templates").delete()

    document, error = verify()

    failed = only_failure(document, error, "access-file")
    assert failed["detail"] == "access.json: 1 grant of the file missing here (the import did not apply)"
    assert failed["specifics"] == ["missing: bob → email-templates"]


def test_verify_deploy__an_extra_grant_only_warns(deployment):
    grant_by_hand("user_a", "team-directory")

    document, error = verify()

    assert error is None
    assert document["ok"] is True
    assert check(document, "access-file")["status"] == "warn"
    assert check(document, "access-file")["detail"] == "access.json: 1 grant not in the file (granted by hand here?)"
    assert check(document, "access-file")["specifics"] == ["extra: user_a → team-directory (not in the file)"]


def test_verify_deploy__an_extra_grant_fails_under_strict(deployment):
    grant_by_hand("user_a", "team-directory")

    document, error = verify("--strict")

    failed = only_failure(document, error, "access-file")
    assert failed["detail"] == "access.json: 1 grant not in the file (granted by hand here?) (--strict)"


def test_verify_deploy__verbosity_2_lists_which_grants_drift_for_which_users(deployment):
    ToolAccess.objects.filter(user__username="carol", tool__key="team-directory").delete()
    grant_by_hand("dave", "email-templates")

    lines, error = verify_text("--check", "access-file", verbosity=2)

    assert lines[:3] == [
        "access-file .................... FAIL  access.json: 1 grant of the file missing here (the import did not "
        "apply); 1 grant not in the file (granted by hand here?)",
        "    missing: carol → team-directory",
        "    extra: dave → email-templates (not in the file)",
    ]
    assert str(error) == "1 of 1 checks failed: access-file."


def test_verify_deploy__users_of_the_file_this_database_lacks_warn_and_fail_under_strict(deployment):
    get_user_model().objects.filter(username="dave").update(email="someone.else@example.com")

    document, _ = verify("--check", "access-file")
    strict_document, _ = verify("--check", "access-file", "--strict")

    assert check(document, "access-file")["status"] == "warn"
    # dave of the file is not this database's dave (email differs): never matched, and the
    # database's dave holds grants the file does not give anyone it can match.
    assert check(document, "access-file")["specifics"] == [
        "extra: dave → invoice-generator (not in the file)",
        "extra: dave → team-directory (not in the file)",
        "unmatched user: dave <dave@example.com>: email differs, skipped on invoice-generator, team-directory",
    ]
    assert check(strict_document, "access-file")["status"] == "fail"


def test_verify_deploy__a_missing_access_file_fails_access_file_naming_the_path(deployment, tmp_path):
    document, _ = verify("--source", str(tmp_path / "nowhere.json"), "--check", "access-file")

    assert check(document, "access-file")["status"] == "fail"
    assert check(document, "access-file")["detail"].startswith(f"{tmp_path / 'nowhere.json'}: no such file")


def test_verify_deploy__source_compares_with_another_file(deployment, tmp_path):
    other = tmp_path / "other.json"
    export_grants(other)
    ToolAccess.objects.filter(user__username="alice", tool__key="email-templates").delete()
    export_grants(deployment)  # the default file now agrees with the database; the other one does not

    default_document, _ = verify("--check", "access-file")
    other_document, _ = verify("--source", str(other), "--check", "access-file")

    assert check(default_document, "access-file")["status"] == "pass"
    assert check(other_document, "access-file")["specifics"] == ["missing: alice → email-templates"]


def test_verify_deploy__no_active_superuser_fails_superuser(deployment):
    get_user_model().objects.filter(is_superuser=True).update(is_active=False)

    document, error = verify()

    failed = only_failure(document, error, "superuser")
    assert failed["detail"] == "no active superuser; create one with `manage.py createsuperuser`"


def test_verify_deploy__a_missing_static_manifest_fails_when_debug_is_off(deployment, settings, tmp_path):
    settings.DEBUG = False
    settings.STATIC_ROOT = tmp_path / "never-collected"

    document, error = verify()

    failed = only_failure(document, error, "static-manifest")
    assert failed["detail"] == (
        f"{tmp_path / 'never-collected' / 'staticfiles.json'} is missing; run `manage.py collectstatic --noinput`"
    )


def test_verify_deploy__a_static_file_the_manifest_lists_but_static_root_lacks_fails(deployment, settings, tmp_path):
    static_root = tmp_path / "static"
    with override_settings(STATIC_ROOT=static_root, STORAGES=MANIFEST_STORAGES):
        call_command("collectstatic", "--noinput", verbosity=0)
    hashed_css = next((static_root / "omnitool").glob("site.*.css"))
    hashed_css.unlink()
    settings.STATIC_ROOT = static_root

    document, _ = verify("--check", "static-manifest")

    assert check(document, "static-manifest")["status"] == "fail"
    assert check(document, "static-manifest")["specifics"] == [f"omnitool/{hashed_css.name}"]


def test_verify_deploy__the_static_manifest_is_not_needed_with_debug_on(deployment, settings, tmp_path):
    settings.DEBUG = True
    settings.STATIC_ROOT = tmp_path / "never-collected"

    document, _ = verify("--check", "static-manifest")

    assert check(document, "static-manifest") | {"seconds": 0} == {
        "name": "static-manifest", "status": "pass", "detail": "not needed: DEBUG is on", "specifics": [], "seconds": 0,
    }


def production_settings(settings) -> None:
    settings.OMNITOOL_ENV = "production"
    settings.DEBUG = False
    settings.SECRET_KEY = "x7!" + "k2#Lq9@" * 8
    settings.ALLOWED_HOSTS = ["omnitool.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True


def test_verify_deploy__deploy_checks_pass_under_production_settings(deployment, settings):
    production_settings(settings)

    document, error = verify()

    assert error is None
    assert document["environment"] == "production"
    assert check(document, "deploy-checks")["detail"] == "check --deploy: no issues"


def test_verify_deploy__a_deploy_check_error_fails_deploy_checks_and_names_it(deployment, settings):
    production_settings(settings)
    settings.SECURE_REFERRER_POLICY = "nobody-knows"

    document, error = verify()

    failed = only_failure(document, error, "deploy-checks")
    assert failed["detail"] == "check --deploy: 1 error, 0 warnings: security.E023"
    assert failed["specifics"][0].startswith("security.E023: You have set the SECURE_REFERRER_POLICY setting")


def test_verify_deploy__deploy_check_warnings_only_warn(deployment, settings):
    production_settings(settings)
    settings.SECURE_HSTS_SECONDS = 0

    document, error = verify()

    assert error is None
    assert check(document, "deploy-checks")["status"] == "warn"
    assert check(document, "deploy-checks")["detail"] == "check --deploy: 0 errors, 1 warning: security.W004"


def test_verify_deploy__deploy_checks_are_not_run_locally(deployment, settings):
    settings.SECURE_HSTS_SECONDS = 0  # a deployment warning that local settings may have

    document, _ = verify("--check", "deploy-checks")

    assert check(document, "deploy-checks")["status"] == "pass"
    assert check(document, "deploy-checks")["detail"] == (
        "check (deployment checks skipped: OMNITOOL_ENV=local): no issues"
    )


# --- scale and failure modes ---------------------------------------------------------------------


def test_verify_deploy__runs_a_constant_number_of_queries_however_many_grants(
    deployment, django_assert_max_num_queries
):
    with CaptureQueriesContext(connection) as few_grants:
        verify()
    User = get_user_model()
    User.objects.bulk_create(User(username=f"user{number:04}", email=f"user{number:04}@example.com") for number in range(400))
    ToolAccess.objects.bulk_create(
        ToolAccess(user=user, tool=tool)
        for user in User.objects.filter(username__startswith="user0")
        for tool in Tool.objects.all()
    )
    export_grants(deployment)
    assert ToolAccess.objects.count() > 1200

    with django_assert_max_num_queries(len(few_grants)):
        document, _ = verify()

    assert document["ok"] is True


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_verify_deploy__an_unreachable_database_fails_database_and_exits_1():
    ignored = {"DATABASE_URL", "OMNITOOL_ENV", "GITHUB_STEP_SUMMARY"}
    environment = {key: value for key, value in os.environ.items() if key not in ignored}
    environment["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{unused_port()}/omnitool_c_unreachable"

    result = subprocess.run(
        [sys.executable, "manage.py", "verify_deploy", "--no-color"],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60,
    )

    assert result.returncode == 1
    assert result.stdout.splitlines()[0].startswith(
        "database ....................... FAIL  cannot query the postgresql database 'default': "
    )
    assert "Connection refused" in result.stdout.splitlines()[0]
    assert result.stderr.strip().splitlines()[-1].startswith("CommandError: ")
    assert "checks failed: database, " in result.stderr
    assert "Traceback" not in result.stderr
