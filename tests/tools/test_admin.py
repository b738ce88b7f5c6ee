"""Tool and grant admin, with "Grant to all active users except…" (tools/admin.py)."""
import pytest
from django.contrib.admin import helpers
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import grant_pairs
from tools.models import ToolAccess

pytestmark = pytest.mark.django_db

ACTION = "grant_to_all_active_users_except_action"


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def people(make_user):
    return {name: make_user(name) for name in ("alice", "bob", "carol", "user_a")}


def run_action(admin_client, tools, excluded=(), apply=True):
    data = {"action": ACTION, helpers.ACTION_CHECKBOX_NAME: [tool.pk for tool in tools]}
    if apply:
        data["apply"] = "Grant"
        data["excluded_users"] = [user.pk for user in excluded]
    return admin_client.post("/admin/tools/tool/", data, follow=apply)


def test_action__shows_an_intermediate_page_naming_the_tools(admin_client, catalogue_tools, people):
    response = run_action(admin_client, [catalogue_tools["invoice-generator"]], apply=False)

    assert response.status_code == 200
    page = response.content.decode()
    assert "Grant to all active users except" in page
    assert "invoice-generator" in page
    assert 'name="excluded_users"' in page
    assert ToolAccess.objects.count() == 0


def test_action__grants_every_active_user_except_the_chosen_ones(admin_client, catalogue_tools, people, make_user):
    make_user("inactive", is_active=False)
    tool = catalogue_tools["invoice-generator"]

    response = run_action(admin_client, [tool], excluded=[people["user_a"]])

    assert {username for username, key in grant_pairs() if key == "invoice-generator"} == {
        "root",
        "alice",
        "bob",
        "carol",
    }
    assert "Granted 4 new accesses to 1 tool; left out: user_a." in response.content.decode()


def test_action__records_who_granted(admin_client, catalogue_tools, people):
    run_action(admin_client, [catalogue_tools["team-directory"]], excluded=[people["user_a"]])

    assert set(ToolAccess.objects.values_list("granted_by__username", flat=True)) == {"root"}


def test_action__is_idempotent_and_keeps_existing_grants(admin_client, catalogue_tools, people, grant):
    tool = catalogue_tools["invoice-generator"]
    grant(people["user_a"], tool)  # granted by hand earlier: the action never removes it
    run_action(admin_client, [tool], excluded=[people["user_a"]])
    before = grant_pairs()

    response = run_action(admin_client, [tool], excluded=[people["user_a"]])

    assert grant_pairs() == before
    assert ("user_a", "invoice-generator") in before
    assert "Granted 0 new accesses" in response.content.decode()


def test_action__applies_to_several_tools_at_once(admin_client, catalogue_tools, people):
    tools = [catalogue_tools["invoice-generator"], catalogue_tools["email-templates"]]

    run_action(admin_client, tools, excluded=[people["user_a"], people["bob"]])

    assert grant_pairs() == {
        (username, tool.key) for username in ("root", "alice", "carol") for tool in tools
    }


def test_action__needs_the_change_permission(client, make_user, catalogue_tools, people):
    viewer = make_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_tool"))
    client.force_login(viewer)

    run_action(client, [catalogue_tools["invoice-generator"]], excluded=[])

    assert ToolAccess.objects.count() == 0


def test_tool_changelist__shows_grant_counts(admin_client, catalogue_tools, people, grant):
    grant(people["alice"], catalogue_tools["email-templates"])
    grant(people["bob"], catalogue_tools["email-templates"])

    response = admin_client.get("/admin/tools/tool/")

    counts = {tool.key: tool.grant_count for tool in response.context["cl"].result_list}
    assert counts == {"email-templates": 2, "invoice-generator": 0, "team-directory": 0}


def _changelist_queries(admin_client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert admin_client.get(url).status_code == 200
    return len(queries)


def test_tool_changelist__query_count_does_not_grow_with_tools(admin_client, make_tool, people, grant):
    for index in range(3):
        grant(people["alice"], make_tool(f"few-{index}"))
    with_few = _changelist_queries(admin_client, "/admin/tools/tool/")
    for index in range(30):
        grant(people["bob"], make_tool(f"many-{index}"))

    assert _changelist_queries(admin_client, "/admin/tools/tool/") == with_few


def test_grant_changelist__query_count_does_not_grow_with_grants(admin_client, make_tool, make_user, grant):
    tool = make_tool("counted")
    for index in range(3):
        grant(make_user(f"few-{index}"), tool)
    with_few = _changelist_queries(admin_client, "/admin/tools/toolaccess/")
    for index in range(30):
        grant(make_user(f"many-{index}"), tool)

    assert _changelist_queries(admin_client, "/admin/tools/toolaccess/") == with_few


def test_user_changelist__query_count_does_not_grow_with_users(admin_client, make_user):
    for index in range(3):
        make_user(f"few-{index}")
    with_few = _changelist_queries(admin_client, "/admin/accounts/user/")
    for index in range(30):
        make_user(f"many-{index}")

    assert _changelist_queries(admin_client, "/admin/accounts/user/") == with_few


def test_tool_page__lists_its_grants_inline(admin_client, catalogue_tools, people, grant):
    tool = catalogue_tools["email-templates"]
    grant(people["alice"], tool)

    response = admin_client.get(f"/admin/tools/tool/{tool.pk}/change/")

    assert response.status_code == 200
    assert "users who can open this tool" in response.content.decode().lower()
    assert "alice" in response.content.decode()


def test_user_page__lists_the_users_tools(admin_client, catalogue_tools, people, grant):
    grant(people["alice"], catalogue_tools["team-directory"])

    response = admin_client.get(f"/admin/accounts/user/{people['alice'].pk}/change/")

    page = response.content.decode()
    assert "tools this user can open" in page.lower()
    assert "Team Directory" in page


def test_tools_cannot_be_added_or_deleted_in_admin(admin_client, catalogue_tools):
    tool = catalogue_tools["email-templates"]

    assert admin_client.get("/admin/tools/tool/add/").status_code == 403
    assert admin_client.get(f"/admin/tools/tool/{tool.pk}/delete/").status_code == 403


def test_grant_added_in_admin_records_who_granted(admin_client, catalogue_tools, people):
    response = admin_client.post(
        "/admin/tools/toolaccess/add/",
        {"user": people["carol"].pk, "tool": catalogue_tools["team-directory"].pk},
    )

    assert response.status_code == 302
    assert ToolAccess.objects.get().granted_by.username == "root"


def test_non_staff_users_cannot_reach_admin(client, make_user):
    client.force_login(make_user("alice"))

    response = client.get("/admin/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_grant_added_inline_on_the_tool_page_records_who_granted(admin_client, catalogue_tools, people):
    tool = catalogue_tools["team-directory"]

    response = admin_client.post(
        f"/admin/tools/tool/{tool.pk}/change/",
        {
            "accesses-TOTAL_FORMS": "1",
            "accesses-INITIAL_FORMS": "0",
            "accesses-0-user": people["bob"].pk,
            "accesses-0-tool": tool.pk,
        },
    )

    assert response.status_code == 302
    assert [(grant.user.username, grant.granted_by.username) for grant in ToolAccess.objects.all()] == [
        ("bob", "root")
    ]
