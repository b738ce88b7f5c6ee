"""The portal and the gate in front of each tool page (tools/views.py)."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import PASSWORD
from tools.catalogue import CATALOGUE, CatalogueTool

CATALOGUE_KEYS = [tool.key for tool in CATALOGUE]

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("key", CATALOGUE_KEYS)
def test_tool_page__granted_user_gets_the_page(client, make_user, grant, catalogue_tools, key):
    alice = make_user("alice")
    grant(alice, catalogue_tools[key])
    client.force_login(alice)

    response = client.get(f"/tools/{key}/")

    assert response.status_code == 200
    assert catalogue_tools[key].name in response.content.decode()


@pytest.mark.parametrize("key", CATALOGUE_KEYS)
def test_tool_page__user_without_grant_gets_403(client, make_user, catalogue_tools, key):
    client.force_login(make_user("bob"))

    assert client.get(f"/tools/{key}/").status_code == 403


@pytest.mark.parametrize("key", CATALOGUE_KEYS)
def test_tool_page__staff_and_superusers_do_not_bypass_grants(client, make_user, catalogue_tools, key):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))

    assert client.get(f"/tools/{key}/").status_code == 403


@pytest.mark.parametrize("key", CATALOGUE_KEYS)
def test_tool_page__anonymous_user_is_sent_to_login(client, catalogue_tools, key):
    response = client.get(f"/tools/{key}/")

    assert response.status_code == 302
    assert response["Location"] == f"/login/?next=/tools/{key}/"


def test_tool_page__grant_on_another_tool_does_not_open_this_one(client, make_user, grant, catalogue_tools):
    alice = make_user("alice")
    grant(alice, catalogue_tools["invoice-generator"])
    client.force_login(alice)

    assert client.get("/tools/email-templates/").status_code == 403


def test_tool_page__unknown_key_is_404(client, make_user):
    client.force_login(make_user("alice"))

    assert client.get("/tools/no-such-tool/").status_code == 404


def test_portal__lists_exactly_the_users_tools(client, make_user, grant, catalogue_tools):
    alice = make_user("alice")
    grant(alice, catalogue_tools["invoice-generator"])
    grant(alice, catalogue_tools["team-directory"])
    grant(make_user("bob"), catalogue_tools["email-templates"])
    client.force_login(alice)

    response = client.get("/")

    assert [tool.key for tool in response.context["tools"]] == ["invoice-generator", "team-directory"]
    assert 'href="/tools/invoice-generator/"' in response.content.decode()
    assert "/tools/email-templates/" not in response.content.decode()


def test_portal__user_without_grants_sees_an_empty_list(client, make_user, catalogue_tools):
    client.force_login(make_user("user_a"))

    response = client.get("/")

    assert list(response.context["tools"]) == []
    assert "No tools have been granted to you yet" in response.content.decode()


def test_portal__anonymous_user_is_sent_to_login(client):
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/"


def _portal_queries(client, monkeypatch, make_tool, grant, user, count: int) -> int:
    tools = [make_tool(f"tool-{count}-{index}") for index in range(count)]
    for tool in tools:
        grant(user, tool)
    catalogue = tuple(CatalogueTool(tool.key, tool.name, "", "tools.pages.team_directory.team_directory") for tool in tools)
    monkeypatch.setattr("tools.views.CATALOGUE", catalogue)
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/")
    assert len(response.context["tools"]) == count
    return len(queries)


def test_portal__query_count_does_not_grow_with_tools(client, monkeypatch, make_user, make_tool, grant):
    alice, bob = make_user("alice"), make_user("bob")
    client.force_login(alice)
    with_3 = _portal_queries(client, monkeypatch, make_tool, grant, alice, 3)
    client.force_login(bob)
    with_30 = _portal_queries(client, monkeypatch, make_tool, grant, bob, 30)

    assert with_3 == with_30


def test_login_page_renders_and_signs_in(client, make_user):
    make_user("alice")

    assert client.get("/login/").status_code == 200
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/"


def test_logout_signs_out(client, make_user):
    client.force_login(make_user("alice"))

    client.post("/logout/")

    assert client.get("/").status_code == 302
