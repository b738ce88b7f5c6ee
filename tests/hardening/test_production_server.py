"""Production settings through a real gunicorn: HTTPS redirect, HSTS, nosniff,
X-Frame-Options DENY, secure cookies, and error pages and /healthz/ that leak
nothing. Heroku's router terminates TLS and says so in X-Forwarded-Proto, so
"over https" here means a request carrying `X-Forwarded-Proto: https`.
"""
import http.client
import re
import socket
import sqlite3
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import pytest

from tests.support.gunicorn import running_gunicorn
from tools.demo import DEMO_USER_PASSWORD

SECRET_KEY = "hardening-production-secret-3f9c1a7e5b2d4c6e8a0b1d3f5e7a9c2b4d6f8e0a"
PRODUCTION = {
    "OMNITOOL_ENV": "production",
    "SECRET_KEY": SECRET_KEY,
    "ALLOWED_HOSTS": "127.0.0.1",
    "RELEASE_VERSION": "v-hardening",
}
HTTPS = {"X-Forwarded-Proto": "https"}
LEAKS = (SECRET_KEY, "Traceback", "SECRET_KEY", 'File "', "settings.py", "OperationalError", "no such table")


class Response:
    def __init__(self, raw: http.client.HTTPResponse):
        self.status = raw.status
        self.headers = raw.headers
        self.body = raw.read().decode(errors="replace")

    def cookies(self) -> SimpleCookie:
        jar = SimpleCookie()
        for header in self.headers.get_all("Set-Cookie") or []:
            jar.load(header)
        return jar


class Browser:
    """Just enough of a browser for one server: cookies kept, redirects not followed."""

    def __init__(self, server, https: bool = True):
        self.server = server
        self.https = https
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: dict | None = None, headers: dict | None = None) -> Response:
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        all_headers = {**(HTTPS if self.https else {}), **(headers or {})}
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        encoded = None
        if body is not None:
            encoded = urlencode(body)
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            connection.request(method, path, body=encoded, headers=all_headers)
            response = Response(connection.getresponse())
        finally:
            connection.close()
        for name, morsel in response.cookies().items():
            self.cookies[name] = morsel.value
        return response

    def sign_in(self, username: str, password: str = DEMO_USER_PASSWORD) -> Response:
        self.request("GET", "/login/")
        origin = f"https://127.0.0.1:{self.server.port}"
        response = self.request(
            "POST",
            "/login/",
            {"username": username, "password": password, "csrfmiddlewaretoken": self.cookies["csrftoken"]},
            headers={"Origin": origin, "Referer": origin + "/login/"},
        )
        assert response.status == 302, response.body
        return response


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_gunicorn(tmp_path_factory.mktemp("production-site"), PRODUCTION) as server:
        yield server


def assert_leaks_nothing(response: Response, server) -> None:
    for needle in (*LEAKS, server.database_url, str(server.directory)):
        assert needle not in response.body, f"{needle!r} appears in a {response.status} page"


def test_production__plain_http_is_redirected_to_https(server):
    response = Browser(server, https=False).request("GET", "/tools/invoice-generator/")

    assert response.status == 301
    assert response.headers["Location"] == f"https://127.0.0.1:{server.port}/tools/invoice-generator/"


def test_production__plain_http_login_post_is_redirected_not_processed(server):
    response = Browser(server, https=False).request("POST", "/login/", {"username": "alice", "password": "x"})

    assert response.status == 301
    assert response.headers["Location"].startswith("https://")
    assert not response.headers.get_all("Set-Cookie")


@pytest.mark.parametrize("path", ["/login/", "/admin/login/", "/tools/invoice-generator/", "/no-such-page/"])
def test_production__responses_carry_hsts_nosniff_and_deny_framing(server, path):
    response = Browser(server).request("GET", path)

    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_production__static_files_carry_hsts_and_nosniff(server):
    login = Browser(server).request("GET", "/login/")
    stylesheet = re.search(r'href="(/static/omnitool/site\.[0-9a-f]+\.css)"', login.body).group(1)

    response = Browser(server).request("GET", stylesheet)

    assert response.status == 200
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_production__csrf_cookie_is_secure(server):
    response = Browser(server).request("GET", "/login/")

    csrf = response.cookies()["csrftoken"]
    assert csrf["secure"] is True
    assert csrf["samesite"] == "Lax"


def test_production__session_cookie_is_secure_and_http_only(server):
    response = Browser(server).sign_in("alice")

    session = response.cookies()["sessionid"]
    assert session["secure"] is True
    assert session["httponly"] is True
    assert session["samesite"] == "Lax"


def test_production__signed_in_user_without_grant_gets_403_without_details(server):
    browser = Browser(server)
    browser.sign_in("user_a")

    response = browser.request("GET", "/tools/invoice-generator/")

    assert response.status == 403
    assert "No access" in response.body
    assert_leaks_nothing(response, server)


def test_production__granted_user_gets_the_tool(server):
    # The control for the 403 above: the same server opens the page for alice.
    browser = Browser(server)
    browser.sign_in("alice")

    assert browser.request("GET", "/tools/invoice-generator/").status == 200


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_production__anonymous_user_is_sent_to_login(server, method):
    response = Browser(server).request(method, "/tools/invoice-generator/")

    assert response.status == 302
    assert response.headers["Location"] == "/login/?next=/tools/invoice-generator/"


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
def test_production__tool_url_without_slash_redirects_to_the_slash_url(server, method):
    response = Browser(server).request(method, "/tools/invoice-generator")

    assert response.status == 301
    assert response.headers["Location"] == "/tools/invoice-generator/"
    assert "Invoice Generator" not in response.body


def test_production__anonymous_post_to_a_tool_is_refused_by_csrf(server):
    response = Browser(server).request("POST", "/tools/invoice-generator/", {"customer": "x"})

    assert response.status == 403
    assert "Invoice Generator" not in response.body
    assert_leaks_nothing(response, server)


def test_production__404_page_shows_no_secret_or_trace(server):
    response = Browser(server).request("GET", "/no-such-page/")

    assert response.status == 404
    assert "Not found" in response.body
    assert_leaks_nothing(response, server)


def test_production__unknown_host_is_400_and_shows_nothing(server):
    response = Browser(server).request("GET", "/", headers={"Host": "evil.example"})

    assert response.status == 400
    assert_leaks_nothing(response, server)
    assert "evil.example" not in response.body


def test_production__healthz_shows_status_and_version_only(server):
    response = Browser(server, https=False).request("GET", "/healthz/")

    assert response.status == 200
    assert response.body.replace(" ", "") == '{"status":"ok","database":"ok","version":"v-hardening"}'


def test_production__debug_is_off(server):
    response = Browser(server).request("GET", "/no-such-page/")

    assert "Using the URLconf defined in" not in response.body
    assert "DEBUG = True" not in response.body


def test_production__500_page_shows_no_secret_or_trace(tmp_path):
    with running_gunicorn(tmp_path, PRODUCTION) as broken:
        browser = Browser(broken)
        browser.sign_in("alice")
        # Break the database under the running app: every signed-in request now fails inside Django.
        with sqlite3.connect(broken.database_path) as database:
            database.execute("DROP TABLE tools_toolaccess")

        response = browser.request("GET", "/")

        assert response.status == 500
        assert "Something went wrong" in response.body
        assert_leaks_nothing(response, broken)
        assert "no such table: tools_toolaccess" in broken.log()  # logged for operators, not shown


DATABASE_PASSWORD = "hardening-db-password-7d1e5c"


@pytest.fixture(scope="module")
def server_without_database(tmp_path_factory):
    """Production settings whose PostgreSQL (password in DATABASE_URL) does not answer."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    url = f"postgres://omnitool:{DATABASE_PASSWORD}@127.0.0.1:{port}/omnitool"
    with running_gunicorn(
        tmp_path_factory.mktemp("no-database-site"), PRODUCTION, database_url=url, migrate=False, load_demo=False
    ) as server:
        yield server


def assert_no_database_secret(response: Response) -> None:
    assert DATABASE_PASSWORD not in response.body
    assert "postgres://" not in response.body
    for needle in LEAKS:
        assert needle not in response.body, f"{needle!r} appears in a {response.status} page"


def test_production__healthz_without_database_is_503_without_the_password(server_without_database):
    response = Browser(server_without_database, https=False).request("GET", "/healthz/")

    assert response.status == 503
    assert response.body.replace(" ", "") == '{"status":"error","database":"error","version":"v-hardening"}'
    assert_no_database_secret(response)


def test_production__500_without_database_shows_no_password(server_without_database):
    browser = Browser(server_without_database)
    browser.cookies["sessionid"] = "a" * 32  # a session to look up: the request needs the database

    response = browser.request("GET", "/")

    assert response.status == 500
    assert "Something went wrong" in response.body
    assert_no_database_secret(response)
