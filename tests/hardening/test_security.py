"""Security, tried hard through Django's test client: the grant gate on every
tool URL (every method, slash and encoding variant), admin access and
permissions, CSRF on every form, login's `next`, and error pages that leak
nothing. The same promises over a real gunicorn in production settings are in
test_production_server.py.
"""
import re
from urllib.parse import urlencode, urlsplit

import pytest
from django.conf import settings
from django.contrib.admin import helpers
from django.contrib.auth.models import Permission
from django.test import Client

from tests.conftest import PASSWORD
from tools.catalogue import CATALOGUE
from tools.models import ToolAccess

pytestmark = pytest.mark.django_db

CATALOGUE_KEYS = [tool.key for tool in CATALOGUE]
METHODS = ["get", "head", "post", "put", "patch", "delete", "options"]
ACTION = "grant_to_all_active_users_except_action"

# Spellings of a tool's URL that Django resolves to the tool's own view.
SAME_VIEW_SPELLINGS = ["/tools/{key}/", "/tools/{key}/?next=/admin/", "/tools/{encoded}/"]
# Spellings that must never serve a tool page (404, or a redirect to the slash URL).
NEVER_THE_PAGE = ["/tools/{key}//", "/tools//{key}/", "/tools/{upper}/", "/tools/{key}/index.html", "/tools/{key}/x/"]

OFF_SITE_TARGETS = [
    "https://evil.example/",
    "http://evil.example/steal",
    "//evil.example",
    "///evil.example/",
    "////evil.example",
    "\\\\evil.example",
    "/\\evil.example",
    "\\/evil.example",
    "https:/evil.example",
    "https:evil.example",
    " //evil.example",
    "\t//evil.example",
    "https://testserver@evil.example/",
    "https://testserver.evil.example/",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "%2F%2Fevil.example",
    "/%2F/evil.example",
]


def assert_stays_on_site(location: str) -> None:
    """Fail if a browser following `location` from our login page would leave the site.

    Read the way browsers read it (WHATWG URL parsing): surrounding whitespace and
    control characters dropped, backslashes taken as slashes, and two or more leading
    slashes starting a host name.
    """
    cleaned = location.strip(" \t\r\n\x00").replace("\\", "/")
    cleaned = re.sub(r"[\t\r\n]", "", cleaned)
    has_scheme = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", cleaned)
    if has_scheme:
        resolved = urlsplit(cleaned)
        assert resolved.scheme == "https" and resolved.netloc == "omnitool.example", f"{location!r} leaves the site"
    assert not cleaned.startswith("//"), f"{location!r} leaves the site"


def spell(pattern: str, key: str) -> str:
    encoded = "".join(f"%{ord(char):02X}" if char == "-" else char for char in key)
    return pattern.format(key=key, encoded=encoded, upper=key.upper())


def request(client: Client, method: str, path: str):
    return getattr(client, method)(path)


@pytest.fixture
def staff_with(make_user):
    """A staff user holding exactly the named permissions (codenames)."""

    def make(username: str, *codenames: str):
        user = make_user(username, is_staff=True)
        user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
        return user

    return make


# --- the grant gate on every tool URL ---------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("key", CATALOGUE_KEYS)
@pytest.mark.parametrize("pattern", SAME_VIEW_SPELLINGS)
def test_tool_url__anonymous_user_is_sent_to_login_for_every_method_and_spelling(
    client, catalogue_tools, method, key, pattern
):
    response = request(client, method, spell(pattern, key))

    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/tools/")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("key", CATALOGUE_KEYS)
@pytest.mark.parametrize("pattern", SAME_VIEW_SPELLINGS)
def test_tool_url__user_without_grant_gets_403_for_every_method_and_spelling(
    client, make_user, grant, catalogue_tools, method, key, pattern
):
    bob = make_user("bob")
    for other_key in CATALOGUE_KEYS:
        if other_key != key:
            grant(bob, catalogue_tools[other_key])  # grants on the other tools open nothing here
    client.force_login(bob)

    response = request(client, method, spell(pattern, key))

    assert response.status_code == 403
    assert catalogue_tools[key].description not in response.content.decode()


@pytest.mark.parametrize("method", ["get", "head", "post"])
@pytest.mark.parametrize("key", CATALOGUE_KEYS)
def test_tool_url__granted_user_gets_the_page_for_safe_methods_and_post(
    client, make_user, grant, catalogue_tools, method, key
):
    # The control for the two tests above: the same requests do open the page with a grant.
    alice = make_user("alice")
    grant(alice, catalogue_tools[key])
    client.force_login(alice)

    assert request(client, method, spell("/tools/{encoded}/", key)).status_code == 200


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("key", CATALOGUE_KEYS)
@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "without-grant"])
def test_tool_url_without_trailing_slash__redirects_to_the_slash_url_never_the_page(
    client, make_user, catalogue_tools, method, key, signed_in
):
    if signed_in:
        client.force_login(make_user("bob"))

    response = request(client, method, f"/tools/{key}")

    assert response.status_code == 301
    assert response["Location"] == f"/tools/{key}/"
    assert catalogue_tools[key].description not in response.content.decode()


@pytest.mark.parametrize("method", ["get", "head", "post"])
@pytest.mark.parametrize("key", CATALOGUE_KEYS)
@pytest.mark.parametrize("pattern", NEVER_THE_PAGE)
def test_tool_url__odd_spellings_are_not_found_even_with_a_grant(
    client, make_user, grant, catalogue_tools, method, key, pattern
):
    alice = make_user("alice")
    grant(alice, catalogue_tools[key])
    client.force_login(alice)

    response = request(client, method, spell(pattern, key))

    assert response.status_code in (301, 404)
    assert catalogue_tools[key].description not in response.content.decode()


@pytest.mark.parametrize("key", CATALOGUE_KEYS)
def test_tool_url__inactive_user_with_a_grant_is_treated_as_anonymous(client, make_user, grant, catalogue_tools, key):
    ghost = make_user("ghost")
    grant(ghost, catalogue_tools[key])
    client.force_login(ghost)
    ghost.is_active = False
    ghost.save()

    response = client.get(f"/tools/{key}/")

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_tool_url__revoked_grant_closes_the_page_at_once(client, make_user, grant, catalogue_tools):
    alice = make_user("alice")
    access = grant(alice, catalogue_tools["team-directory"])
    client.force_login(alice)
    assert client.get("/tools/team-directory/").status_code == 200

    access.delete()

    assert client.get("/tools/team-directory/").status_code == 403


# --- admin ---------------------------------------------------------------------------------------


ADMIN_URLS = [
    "/admin/",
    "/admin/tools/tool/",
    "/admin/tools/toolaccess/",
    "/admin/tools/toolaccess/add/",
    "/admin/accounts/user/",
    "/admin/autocomplete/?app_label=tools&model_name=toolaccess&field_name=user&term=a",
]


@pytest.mark.parametrize("url", ADMIN_URLS)
def test_admin__non_staff_user_is_sent_to_admin_login(client, make_user, url):
    make_user("alice")  # someone the autocomplete could otherwise list
    client.force_login(make_user("mallory"))

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert "alice" not in response.content.decode()


@pytest.mark.parametrize("url", ADMIN_URLS)
def test_admin__anonymous_user_is_sent_to_admin_login(client, url):
    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_admin__non_staff_user_cannot_sign_in_at_admin_login(client, make_user):
    make_user("mallory")

    response = client.post("/admin/login/", {"username": "mallory", "password": PASSWORD, "next": "/admin/"})

    assert response.status_code == 200  # the form again, with an error
    assert "_auth_user_id" not in client.session


def test_admin__non_staff_user_cannot_run_the_grant_action(client, make_user, catalogue_tools):
    client.force_login(make_user("mallory"))

    client.post(
        "/admin/tools/tool/",
        {
            "action": ACTION,
            helpers.ACTION_CHECKBOX_NAME: [catalogue_tools["invoice-generator"].pk],
            "apply": "Grant",
            "excluded_users": [],
        },
    )

    assert ToolAccess.objects.count() == 0


@pytest.mark.parametrize(
    "codenames",
    [(), ("view_tool",), ("view_tool", "view_toolaccess", "view_user")],
    ids=["no-permission", "view-tool", "view-everything"],
)
def test_admin__staff_without_change_permission_cannot_run_the_grant_action(
    client, staff_with, make_user, catalogue_tools, codenames
):
    make_user("alice")
    client.force_login(staff_with("viewer", *codenames))

    response = client.post(
        "/admin/tools/tool/",
        {
            "action": ACTION,
            helpers.ACTION_CHECKBOX_NAME: [catalogue_tools["invoice-generator"].pk],
            "apply": "Grant",
            "excluded_users": [],
        },
    )

    assert response.status_code in (200, 302, 403)  # the changelist again, or a refusal
    assert "grant-to-all-except-form" not in response.content.decode()
    assert ToolAccess.objects.count() == 0


def test_admin__staff_who_may_change_tools_but_not_add_grants_cannot_run_the_grant_action(
    client, staff_with, make_user, catalogue_tools
):
    # The action creates grants, so it needs what the grant add page and the inline need: add_toolaccess.
    make_user("alice")
    client.force_login(staff_with("editor", "view_tool", "change_tool", "view_toolaccess", "view_user"))

    response = client.post("/admin/tools/tool/", _action_data(catalogue_tools["invoice-generator"]))

    assert "grant-to-all-except-form" not in response.content.decode()
    assert ToolAccess.objects.count() == 0


def test_admin__staff_who_may_change_tools_and_add_grants_can_run_the_grant_action(
    client, staff_with, make_user, catalogue_tools
):
    # The control for the refusals above.
    make_user("alice")
    client.force_login(staff_with("granter", "view_tool", "change_tool", "add_toolaccess", "view_user"))

    client.post("/admin/tools/tool/", _action_data(catalogue_tools["invoice-generator"]))

    assert set(ToolAccess.objects.values_list("user__username", flat=True)) == {"alice", "granter"}


def test_admin__grant_action_is_not_offered_to_staff_without_change_permission(client, staff_with, catalogue_tools):
    client.force_login(staff_with("viewer", "view_tool"))

    response = client.get("/admin/tools/tool/")

    assert response.status_code == 200
    assert ACTION not in response.content.decode()


@pytest.mark.parametrize(
    "codenames",
    [(), ("view_tool", "view_toolaccess", "view_user"), ("change_tool", "view_toolaccess", "view_user")],
    ids=["no-permission", "view-everything", "change-tool-only"],
)
def test_admin__staff_without_add_permission_cannot_use_the_grant_add_page(
    client, staff_with, make_user, catalogue_tools, codenames
):
    alice = make_user("alice")
    client.force_login(staff_with("viewer", *codenames))

    page = client.get("/admin/tools/toolaccess/add/")
    response = client.post(
        "/admin/tools/toolaccess/add/", {"user": alice.pk, "tool": catalogue_tools["invoice-generator"].pk}
    )

    assert page.status_code == 403
    assert response.status_code == 403
    assert ToolAccess.objects.count() == 0


def test_admin__staff_with_view_permission_cannot_add_grants_inline_on_the_tool_page(
    client, staff_with, make_user, catalogue_tools
):
    alice = make_user("alice")
    tool = catalogue_tools["invoice-generator"]
    client.force_login(staff_with("viewer", "view_tool", "view_toolaccess"))

    response = client.post(
        f"/admin/tools/tool/{tool.pk}/change/",
        {
            "accesses-TOTAL_FORMS": "1",
            "accesses-INITIAL_FORMS": "0",
            "accesses-MIN_NUM_FORMS": "0",
            "accesses-MAX_NUM_FORMS": "1000",
            "accesses-0-user": alice.pk,
            "accesses-0-tool": tool.pk,
        },
    )

    assert response.status_code == 403
    assert ToolAccess.objects.count() == 0


def test_admin__staff_with_add_permission_can_use_the_grant_add_page(client, staff_with, make_user, catalogue_tools):
    # The control: the refusals above come from permissions, not from a broken form.
    alice = make_user("alice")
    client.force_login(staff_with("granter", "add_toolaccess", "view_toolaccess", "view_user", "view_tool"))

    response = client.post(
        "/admin/tools/toolaccess/add/", {"user": alice.pk, "tool": catalogue_tools["invoice-generator"].pk}
    )

    assert response.status_code == 302
    assert ToolAccess.objects.filter(user=alice).count() == 1


# --- CSRF ----------------------------------------------------------------------------------------


@pytest.fixture
def csrf_client():
    return Client(enforce_csrf_checks=True)


def csrf_token(client: Client, url: str) -> str:
    """The token a browser would send: fetch the form page, read the cookie."""
    assert client.get(url).status_code == 200
    return client.cookies[settings.CSRF_COOKIE_NAME].value


def test_csrf__login_without_token_is_refused(csrf_client, make_user):
    make_user("alice")

    response = csrf_client.post("/login/", {"username": "alice", "password": PASSWORD})

    assert response.status_code == 403
    assert "_auth_user_id" not in csrf_client.session


def test_csrf__login_with_token_signs_in(csrf_client, make_user):
    make_user("alice")
    token = csrf_token(csrf_client, "/login/")

    response = csrf_client.post("/login/", {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": token})

    assert response.status_code == 302
    assert csrf_client.session["_auth_user_id"]


def test_csrf__login_with_a_forged_token_is_refused(csrf_client, make_user):
    make_user("alice")
    csrf_token(csrf_client, "/login/")

    response = csrf_client.post(
        "/login/", {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": "x" * 64}
    )

    assert response.status_code == 403


def test_csrf__admin_login_without_token_is_refused(csrf_client, make_user):
    make_user("root", is_staff=True, is_superuser=True)

    response = csrf_client.post("/admin/login/", {"username": "root", "password": PASSWORD, "next": "/admin/"})

    assert response.status_code == 403
    assert "_auth_user_id" not in csrf_client.session


def test_csrf__logout_without_token_is_refused_and_keeps_the_session(csrf_client, make_user):
    csrf_client.force_login(make_user("alice"))

    response = csrf_client.post("/logout/")

    assert response.status_code == 403
    assert csrf_client.get("/").status_code == 200


def test_csrf__logout_with_token_signs_out(csrf_client, make_user):
    csrf_client.force_login(make_user("alice"))
    token = csrf_token(csrf_client, "/")

    csrf_client.post("/logout/", {"csrfmiddlewaretoken": token})

    assert csrf_client.get("/").status_code == 302


def test_logout__by_get_is_not_allowed_and_keeps_the_session(client, make_user):
    # A link or <img src="/logout/"> on another site must not sign anyone out.
    client.force_login(make_user("alice"))

    assert client.get("/logout/").status_code == 405
    assert client.get("/").status_code == 200


INVOICE = {
    "customer": "ACME",
    "tax_rate": "20",
    "form-TOTAL_FORMS": "1",
    "form-INITIAL_FORMS": "0",
    "form-MIN_NUM_FORMS": "0",
    "form-MAX_NUM_FORMS": "50",
    "form-0-description": "Widget",
    "form-0-quantity": "2",
    "form-0-unit_price": "10.00",
}


def test_csrf__invoice_generator_post_without_token_is_refused(csrf_client, make_user, grant, catalogue_tools):
    alice = make_user("alice")
    grant(alice, catalogue_tools["invoice-generator"])
    csrf_client.force_login(alice)

    response = csrf_client.post("/tools/invoice-generator/", INVOICE)

    assert response.status_code == 403
    assert "24.00" not in response.content.decode()


def test_csrf__invoice_generator_post_with_token_computes_the_total(csrf_client, make_user, grant, catalogue_tools):
    alice = make_user("alice")
    grant(alice, catalogue_tools["invoice-generator"])
    csrf_client.force_login(alice)
    token = csrf_token(csrf_client, "/tools/invoice-generator/")

    response = csrf_client.post("/tools/invoice-generator/", {**INVOICE, "csrfmiddlewaretoken": token})

    assert response.status_code == 200
    assert re.search(r'id="total">24\.00<', response.content.decode())


def _action_data(tool, **extra):
    return {"action": ACTION, helpers.ACTION_CHECKBOX_NAME: [tool.pk], "apply": "Grant", "excluded_users": [], **extra}


def test_csrf__admin_grant_action_without_token_is_refused(csrf_client, make_user, catalogue_tools):
    csrf_client.force_login(make_user("root", is_staff=True, is_superuser=True))
    make_user("alice")

    response = csrf_client.post("/admin/tools/tool/", _action_data(catalogue_tools["invoice-generator"]))

    assert response.status_code == 403
    assert ToolAccess.objects.count() == 0


def test_csrf__admin_grant_action_with_token_grants(csrf_client, make_user, catalogue_tools):
    csrf_client.force_login(make_user("root", is_staff=True, is_superuser=True))
    make_user("alice")
    token = csrf_token(csrf_client, "/admin/tools/tool/")

    response = csrf_client.post(
        "/admin/tools/tool/", _action_data(catalogue_tools["invoice-generator"], csrfmiddlewaretoken=token)
    )

    assert response.status_code == 302
    assert ToolAccess.objects.count() == 2


def test_csrf__admin_grant_add_page_without_token_is_refused(csrf_client, make_user, catalogue_tools):
    csrf_client.force_login(make_user("root", is_staff=True, is_superuser=True))
    alice = make_user("alice")

    response = csrf_client.post(
        "/admin/tools/toolaccess/add/", {"user": alice.pk, "tool": catalogue_tools["team-directory"].pk}
    )

    assert response.status_code == 403
    assert ToolAccess.objects.count() == 0


def test_csrf__token_of_another_session_is_refused(make_user, grant, catalogue_tools):
    alice = make_user("alice")
    grant(alice, catalogue_tools["invoice-generator"])
    attacker = Client(enforce_csrf_checks=True)
    stolen = csrf_token(attacker, "/login/")  # a valid token, but for the attacker's cookie
    victim = Client(enforce_csrf_checks=True)
    victim.force_login(alice)
    csrf_token(victim, "/")

    response = victim.post("/tools/invoice-generator/", {**INVOICE, "csrfmiddlewaretoken": stolen})

    assert response.status_code == 403


def test_login__issues_a_new_session_key(client, make_user):
    # Session fixation: a session id planted before sign-in must not become the signed-in session.
    make_user("alice")
    client.get("/login/")
    session = client.session
    session["planted"] = True
    session.save()
    planted_key = session.session_key

    client.post("/login/", {"username": "alice", "password": PASSWORD})

    assert client.session.session_key != planted_key
    assert client.session["_auth_user_id"]


# --- login's `next` ------------------------------------------------------------------------------


@pytest.mark.parametrize("target", OFF_SITE_TARGETS)
def test_login__next_cannot_send_the_user_off_site(client, make_user, target):
    make_user("alice")

    response = client.post("/login/", {"username": "alice", "password": PASSWORD, "next": target})

    assert response.status_code == 302
    assert_stays_on_site(response["Location"])


@pytest.mark.parametrize("target", OFF_SITE_TARGETS)
def test_login__next_in_the_query_string_cannot_send_the_user_off_site(client, make_user, target):
    make_user("alice")

    response = client.post(
        "/login/", {"username": "alice", "password": PASSWORD}, QUERY_STRING=urlencode({"next": target})
    )

    assert response.status_code == 302
    assert_stays_on_site(response["Location"])


@pytest.mark.parametrize("target", OFF_SITE_TARGETS)
def test_login__signed_in_user_visiting_login_with_next_stays_on_site(client, make_user, target):
    client.force_login(make_user("alice"))

    response = client.get("/login/", {"next": target})

    assert response.status_code == 302
    assert_stays_on_site(response["Location"])


@pytest.mark.parametrize("target", OFF_SITE_TARGETS)
def test_admin_login__next_cannot_send_staff_off_site(client, make_user, target):
    make_user("root", is_staff=True, is_superuser=True)

    response = client.post("/admin/login/", {"username": "root", "password": PASSWORD, "next": target})

    assert response.status_code == 302
    assert_stays_on_site(response["Location"])


@pytest.mark.parametrize("target", OFF_SITE_TARGETS)
def test_logout__next_cannot_send_the_user_off_site(client, make_user, target):
    client.force_login(make_user("alice"))

    response = client.post("/logout/", {"next": target})

    assert response.status_code == 302
    assert_stays_on_site(response["Location"])


def test_login__next_on_site_is_followed(client, make_user):
    # The control: a local `next` is honoured, so the refusals above are real.
    make_user("alice")

    response = client.post("/login/", {"username": "alice", "password": PASSWORD, "next": "/tools/team-directory/"})

    assert response["Location"] == "/tools/team-directory/"


def test_login__next_is_escaped_in_the_form(client):
    response = client.get("/login/", {"next": '"><script>alert(1)</script>'})

    page = response.content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&quot;&gt;&lt;script&gt;" in page


# --- error pages and healthz leak nothing ----------------------------------------------------------


SECRET = "hardening-secret-key-that-must-never-be-shown-0123456789"


def assert_leaks_nothing(body: str) -> None:
    for needle in (SECRET, "Traceback", "SECRET_KEY", "DATABASES", "django.db", 'File "', "settings.py"):
        assert needle not in body, f"{needle!r} appears in the page"


@pytest.fixture
def secret_settings(settings):
    settings.SECRET_KEY = SECRET
    settings.DEBUG = False
    return settings


def test_error_page__404_shows_no_secret_or_trace(client, secret_settings, make_user):
    client.force_login(make_user("alice"))

    response = client.get("/tools/no-such-tool/")

    assert response.status_code == 404
    assert "Not found" in response.content.decode()
    assert_leaks_nothing(response.content.decode())


def test_error_page__403_shows_no_secret_or_trace(client, secret_settings, make_user, catalogue_tools):
    client.force_login(make_user("alice"))

    response = client.get("/tools/team-directory/")

    assert response.status_code == 403
    assert "No access" in response.content.decode()
    assert_leaks_nothing(response.content.decode())


def test_error_page__500_shows_no_secret_or_trace(secret_settings):
    secret_settings.ROOT_URLCONF = "tests.hardening.error_urls"
    client = Client(raise_request_exception=False)

    response = client.get("/hardening/fail/")

    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()
    assert_leaks_nothing(response.content.decode())


def test_error_page__csrf_failure_shows_no_secret_or_trace(secret_settings):
    response = Client(enforce_csrf_checks=True).post("/login/", {"username": "x", "password": "y"})

    assert response.status_code == 403
    assert_leaks_nothing(response.content.decode())


def test_error_page__bad_host_is_400_and_shows_nothing(client, secret_settings):
    secret_settings.ALLOWED_HOSTS = ["omnitool.example"]

    response = client.get("/", HTTP_HOST="evil.example")

    assert response.status_code == 400
    assert_leaks_nothing(response.content.decode())
    assert "evil.example" not in response.content.decode()


def test_healthz__shows_no_secret(client, secret_settings):
    response = client.get("/healthz/")

    assert response.status_code == 200
    assert set(response.json()) == {"status", "database", "version"}
    assert_leaks_nothing(response.content.decode())


def test_healthz__database_failure_is_503_without_details(client, secret_settings, monkeypatch):
    from django.db import OperationalError

    def unreachable(*args, **kwargs):
        raise OperationalError(f"could not connect: password {SECRET} rejected for host db.internal")

    monkeypatch.setattr("omnitool.views.connection.cursor", unreachable)

    response = client.get("/healthz/")

    assert response.status_code == 503
    assert response.json()["database"] == "error"
    assert_leaks_nothing(response.content.decode())
    assert "db.internal" not in response.content.decode()
