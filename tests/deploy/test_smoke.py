"""`smoke --url URL` (deploy/smoke.py, deploy/management/commands/smoke.py).

Against a real gunicorn (tests/support/gunicorn.py) serving a migrated database
with demo data and collected static files: healthy passes, with and without
credentials; each way of breaking the deployment fails the check that names it.
Retries and the one-origin rule are proved against tiny loopback servers.
"""
import json
import os
import re
import socket
import subprocess
import sys
import threading
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from deploy.smoke import run_smoke
from tests.support.databases import create_database, database_url, drop_databases
from tests.support.gunicorn import running_gunicorn
from tools.demo import DEMO_USER_PASSWORD

ROOT = Path(__file__).resolve().parents[2]
ANONYMOUS_CHECKS = [
    "healthz",
    "portal-requires-login",
    "login-page",
    "admin-login-page",
    "static-file",
    "tool-pages-refuse-anonymous",
]
SIGNED_IN_CHECKS = ["login", "portal-tools-open", "ungranted-tools-refused"]
CHECKLIST_LINE = re.compile(r"^(?P<name>\S+) \.{3,} (?P<status>ok|warn|FAIL)\s+(?P<detail>.*)$")


@pytest.fixture(scope="module")
def healthy_server(tmp_path_factory):
    with running_gunicorn(tmp_path_factory.mktemp("healthy"), {"RELEASE_VERSION": "v-smoke"}) as server:
        yield server


def smoke_process(url: str, *arguments: str, username: str | None = None, password: str | None = None,
                  **environment: str) -> subprocess.CompletedProcess:
    """`manage.py smoke --url URL ARGUMENTS` as a process, credentials only when given."""
    env = {
        key: value for key, value in os.environ.items()
        if key not in {"SMOKE_USERNAME", "SMOKE_PASSWORD", "GITHUB_STEP_SUMMARY", "DATABASE_URL"}
    }
    if username is not None:
        env.update(SMOKE_USERNAME=username, SMOKE_PASSWORD=password or "")
    env.update(environment)
    return subprocess.run(
        [sys.executable, "manage.py", "smoke", "--url", url, "--no-color", *arguments],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


def checklist(output: str) -> dict[str, tuple[str, str]]:
    """{check name: (ok|warn|FAIL, detail)} from the text output."""
    return {
        match["name"]: (match["status"], match["detail"])
        for match in map(CHECKLIST_LINE.match, output.splitlines())
        if match
    }


def smoke_command(url: str, *arguments: str) -> tuple[str, CommandError | None]:
    stdout = StringIO()
    try:
        call_command("smoke", "--url", url, *arguments, no_color=True, stdout=stdout)
        return stdout.getvalue(), None
    except CommandError as error:
        return stdout.getvalue(), error


@pytest.fixture
def no_credentials(monkeypatch):
    monkeypatch.delenv("SMOKE_USERNAME", raising=False)
    monkeypatch.delenv("SMOKE_PASSWORD", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


# --- a healthy deployment ---------------------------------------------------------------------------


def test_smoke__a_healthy_deployment_passes_without_credentials(healthy_server):
    result = smoke_process(healthy_server.url, "--retries", "0", "--expect-version", "v-smoke")

    assert result.returncode == 0, result.stdout + result.stderr
    checks = checklist(result.stdout)
    assert list(checks) == ANONYMOUS_CHECKS
    assert {status for status, _ in checks.values()} == {"ok"}
    assert re.fullmatch(r"200 in \d+\.\d\d s: database ok, version v-smoke", checks["healthz"][1])
    assert checks["portal-requires-login"][1] == "302 to /login/?next=/"
    assert re.fullmatch(
        r"/static/omnitool/site\.[0-9a-f]{12}\.css: max-age=315360000, public, immutable", checks["static-file"][1]
    )
    assert "Signed-in checks skipped: set SMOKE_USERNAME and SMOKE_PASSWORD to run them." in result.stdout
    assert result.stderr == ""


def test_smoke__a_healthy_deployment_passes_signed_in_as_a_demo_user(healthy_server):
    result = smoke_process(healthy_server.url, "--retries", "0", username="alice", password=DEMO_USER_PASSWORD)

    assert result.returncode == 0, result.stdout + result.stderr
    checks = checklist(result.stdout)
    assert list(checks) == ANONYMOUS_CHECKS + SIGNED_IN_CHECKS
    assert checks["login"] == ("ok", "signed in as alice")
    assert checks["portal-tools-open"] == (
        "ok", "alice: email-templates, invoice-generator, team-directory listed and open"
    )
    # alice holds every tool: nothing can be seen refused, which is worth a warning, not a failure.
    assert checks["ungranted-tools-refused"][0] == "warn"


def test_smoke__a_user_without_a_grant_sees_that_tool_refused(healthy_server, no_credentials, monkeypatch):
    monkeypatch.setenv("SMOKE_USERNAME", "bob")
    monkeypatch.setenv("SMOKE_PASSWORD", DEMO_USER_PASSWORD)

    output, error = smoke_command(healthy_server.url, "--retries", "0")

    assert error is None
    checks = checklist(output)
    assert checks["portal-tools-open"] == ("ok", "bob: email-templates, invoice-generator listed and open")
    assert checks["ungranted-tools-refused"] == ("ok", "team-directory refused (403)")


def test_smoke__a_wrong_password_fails_login_and_the_checks_that_need_it(healthy_server, no_credentials, monkeypatch):
    monkeypatch.setenv("SMOKE_USERNAME", "bob")
    monkeypatch.setenv("SMOKE_PASSWORD", "not-bobs-password")

    output, error = smoke_command(healthy_server.url, "--retries", "0")

    checks = checklist(output)
    assert checks["login"] == (
        "FAIL",
        "cannot sign in as bob: the login form came back: wrong SMOKE_USERNAME or SMOKE_PASSWORD, or an inactive user",
    )
    assert str(error) == "3 of 9 checks failed: login, portal-tools-open, ungranted-tools-refused."


def test_smoke__a_different_release_version_fails_healthz(healthy_server, no_credentials):
    output, error = smoke_command(healthy_server.url, "--retries", "0", "--expect-version", "v2")

    assert checklist(output)["healthz"] == ("FAIL", "version 'v-smoke' is running, expected 'v2'")
    assert str(error) == "1 of 6 checks failed: healthz."


def test_smoke__json_is_one_document_with_every_check(healthy_server, no_credentials):
    output, error = smoke_command(healthy_server.url, "--retries", "0", "--format", "json")

    document = json.loads(output)
    assert error is None
    assert document["ok"] is True
    assert document["url"] == healthy_server.url
    assert [(check["name"], check["status"]) for check in document["checks"]] == [
        (name, "pass") for name in ANONYMOUS_CHECKS
    ]


def test_smoke__appends_its_results_to_the_github_step_summary(healthy_server, no_credentials, tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    smoke_command(healthy_server.url, "--retries", "0")

    lines = summary.read_text().splitlines()
    assert lines[0] == f"### smoke ({healthy_server.url}): passed"
    assert [line.split("|")[1].strip() for line in lines[4:10]] == [f"`{name}`" for name in ANONYMOUS_CHECKS]
    assert all("✅ ok" in line for line in lines[4:10])


def test_smoke__a_url_that_is_not_a_site_root_is_a_one_line_error(no_credentials):
    with pytest.raises(CommandError, match=r"^--url must be the site's root \(OmniTool is served at /\), not "):
        call_command("smoke", "--url", "http://127.0.0.1:8000/admin/")


def test_smoke__half_the_credentials_is_a_one_line_error(no_credentials, monkeypatch):
    monkeypatch.setenv("SMOKE_USERNAME", "alice")

    with pytest.raises(CommandError, match="^set both SMOKE_USERNAME and SMOKE_PASSWORD, or neither$"):
        call_command("smoke", "--url", "http://127.0.0.1:8000")


# --- broken deployments ------------------------------------------------------------------------------


def test_smoke__an_unreachable_database_fails_healthz_with_503(tmp_path):
    with running_gunicorn(tmp_path) as server:
        # A directory where the SQLite file was: every new connection fails to open it.
        server.database_path.unlink()
        server.database_path.mkdir()

        result = smoke_process(server.url, "--retries", "0")

    assert result.returncode == 1
    checks = checklist(result.stdout)
    assert checks["healthz"] == ("FAIL", "/healthz/ answered 503: database error, status error")
    assert [name for name, (status, _) in checks.items() if status == "FAIL"] == ["healthz"]
    assert result.stderr.strip() == "CommandError: 1 of 6 checks failed: healthz."


@pytest.mark.postgresql
def test_smoke__a_dropped_postgresql_database_fails_healthz_with_503(tmp_path):
    name = f"omnitool_c_smoke_{uuid.uuid4().hex[:8]}"
    create_database(name)
    try:
        with running_gunicorn(tmp_path, database_url=database_url(name)) as server:
            drop_databases(name)

            result = smoke_process(server.url, "--retries", "0")
    finally:
        drop_databases(name)

    assert result.returncode == 1
    assert checklist(result.stdout)["healthz"] == ("FAIL", "/healthz/ answered 503: database error, status error")


def test_smoke__a_portal_listing_a_tool_without_a_grant_fails_portal_tools_open(tmp_path):
    with running_gunicorn(tmp_path, app="tests.support.faulty_apps:with_portal('leaky')") as server:
        result = smoke_process(server.url, "--retries", "0", username="bob", password=DEMO_USER_PASSWORD)

    assert result.returncode == 1
    checks = checklist(result.stdout)
    assert checks["portal-tools-open"] == (
        "FAIL", "the portal lists 1 tool bob cannot open: team-directory is listed but answers 403"
    )
    assert [name for name, (status, _) in checks.items() if status == "FAIL"] == ["portal-tools-open"]
    assert result.stderr.strip() == "CommandError: 1 of 9 checks failed: portal-tools-open."


def test_smoke__a_portal_hiding_a_granted_tool_fails_ungranted_tools_refused(tmp_path):
    with running_gunicorn(tmp_path, app="tests.support.faulty_apps:with_portal('forgetful')") as server:
        result = smoke_process(server.url, "--retries", "0", username="bob", password=DEMO_USER_PASSWORD)

    assert result.returncode == 1
    checks = checklist(result.stdout)
    assert checks["ungranted-tools-refused"] == (
        "FAIL",
        "invoice-generator opens (200) but the portal does not list it; "
        "email-templates opens (200) but the portal does not list it",
    )
    assert checks["portal-tools-open"] == ("ok", "the portal lists no tools for bob")


def test_smoke__an_https_only_deployment_smoked_over_http_says_to_use_https(tmp_path):
    production = {"OMNITOOL_ENV": "production", "SECRET_KEY": "x7!" + "k2#Lq9@" * 8, "ALLOWED_HOSTS": "127.0.0.1"}
    with running_gunicorn(tmp_path, production) as server:
        result = smoke_process(server.url, "--retries", "0")

    checks = checklist(result.stdout)
    assert result.returncode == 1
    assert checks["healthz"][0] == "ok"  # exempt from the HTTPS redirect, for load balancers
    assert checks["login-page"] == (
        "FAIL", f"/login/ answered 301 to https://127.0.0.1:{server.port}/login/ (HTTPS only: smoke the https:// URL)"
    )


def test_smoke__a_deployment_without_collectstatic_fails_static_file(tmp_path):
    with running_gunicorn(tmp_path, collectstatic=False) as server:
        result = smoke_process(server.url, "--retries", "0")

    assert result.returncode == 1
    checks = checklist(result.stdout)
    # Without the manifest, {% static %} cannot name the hashed file, so the pages that link one fail too.
    assert checks["static-file"] == ("FAIL", "/login/ answered 500, so no stylesheet link to follow")
    assert checks["healthz"][0] == "ok"
    assert "static-file" in result.stderr


# --- retries and the one-origin rule, against tiny loopback servers ------------------------------------


@contextmanager
def loopback_server(answer):
    """An HTTP server on a free 127.0.0.1 port; yields (url, paths requested).

    `answer(handler)` returns (status, headers, body) for each GET.
    """
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            status, headers, body = answer(self)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


HEALTHY = (200, {"Content-Type": "application/json"}, b'{"status": "ok", "database": "ok", "version": "v3"}')


def test_smoke__retries_while_the_app_boots_then_passes():
    answers = iter([(503, {}, b"booting"), (503, {}, b"booting")])
    pauses = []

    with loopback_server(lambda handler: next(answers, HEALTHY)) as (url, hits):
        report = run_smoke(url, retries=5, only=["healthz"], sleep=pauses.append)

    assert report.ok
    assert report.result("healthz").detail.endswith("after 2 retries: database ok, version v3")
    assert pauses == [1.0, 2.0]
    assert hits == ["/healthz/"] * 3


def test_smoke__gives_up_after_the_retries_when_nothing_listens():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pauses = []

    report = run_smoke(f"http://127.0.0.1:{port}", retries=3, only=["healthz", "login-page"], sleep=pauses.append)

    assert pauses == [1.0, 2.0, 4.0]
    assert report.result("healthz").detail.startswith(
        f"no answer after 3 retries: GET http://127.0.0.1:{port}/healthz/: "
    )
    assert "Connection refused" in report.result("healthz").detail
    assert report.result("login-page").status.value == "fail"  # every check runs, no more retries spent
    assert len(pauses) == 3


def test_smoke__never_requests_a_stylesheet_on_another_origin():
    with loopback_server(lambda handler: (200, {}, b"body {}")) as (elsewhere, elsewhere_hits):
        page = f'<link rel="stylesheet" href="{elsewhere}/site.css">'.encode()
        with loopback_server(lambda handler: (200, {"Content-Type": "text/html"}, page)) as (url, hits):
            report = run_smoke(url, retries=0, only=["static-file"])

    assert report.result("static-file").detail == (
        f"the stylesheet is on another origin ({elsewhere}/site.css); smoke only requests {url}"
    )
    assert hits == ["/login/"]
    assert elsewhere_hits == []


def test_smoke__a_static_file_without_long_cache_headers_fails():
    def answer(handler):
        if handler.path == "/login/":
            return 200, {}, b'<link rel="stylesheet" href="/static/site.css">'
        return 200, {"Cache-Control": "max-age=60, public"}, b"body {}"

    with loopback_server(answer) as (url, _):
        report = run_smoke(url, retries=0, only=["static-file"])

    assert report.result("static-file").status.value == "fail"
    assert report.result("static-file").detail.startswith(
        "/static/site.css is cached with 'max-age=60, public', not max-age >= 31536000"
    )


def test_smoke__redirects_are_read_not_followed():
    def answer(handler):
        return 302, {"Location": "https://example.com/elsewhere/"}, b""

    with loopback_server(answer) as (url, hits):
        report = run_smoke(url, retries=0, only=["portal-requires-login"])

    assert report.result("portal-requires-login").detail == (
        "/ answered an anonymous user 302 to https://example.com/elsewhere/ (HTTPS only: smoke the https:// URL), "
        "not a redirect to /login/"
    )
    assert hits == ["/"]
