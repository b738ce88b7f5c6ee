"""The admin and the portal in a real browser: Playwright for Python driving
Debian's Chromium against a real gunicorn.

An admin signs in, selects a tool, runs "Grant to all active users except…",
leaves out user_a in the select2 user picker and submits; then user_a's
portal lacks the tool and its URL answers 403, while everyone else has it.
Screenshots go to test-artifacts/browser/.

The browser is `OMNITOOL_CHROMIUM` (default /usr/bin/chromium); none is ever
downloaded. Without it these tests skip, unless OMNITOOL_REQUIRE_BROWSER=1
(CI), where a missing browser is a failure.
"""
import os
from pathlib import Path

import pytest

from tests.support.gunicorn import PROJECT_ROOT, running_gunicorn
from tools.demo import DEMO_ADMIN_PASSWORD, DEMO_ADMIN_USERNAME, DEMO_USER_PASSWORD

CHROMIUM = Path(os.environ.get("OMNITOOL_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "browser"
TOOL_KEY = "team-directory"
TOOL_NAME = "Team Directory"
ACTION = "grant_to_all_active_users_except_action"
# Nobody holds the tool before the admin acts, so every grant the tests see is the action's.
REVOKE_TOOL = (
    "from tools.models import ToolAccess; "
    f"ToolAccess.objects.filter(tool__key={TOOL_KEY!r}).delete()"
)


def _require_browser() -> None:
    if CHROMIUM.exists():
        return
    message = f"no Chromium at {CHROMIUM} (install Debian's chromium or set OMNITOOL_CHROMIUM)"
    if os.environ.get("OMNITOOL_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{message}; OMNITOOL_REQUIRE_BROWSER=1, so this may not be skipped")
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with running_gunicorn(tmp_path_factory.mktemp("browser-site")) as server:
        server.manage("shell", "-c", REVOKE_TOOL)
        yield server


def screenshot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(browser, site, username: str, password: str = DEMO_USER_PASSWORD):
    """A fresh browser context signed in at /login/; returns its page on the portal."""
    context = browser.new_context()
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(f"{site.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.url}/")
    return page


def portal_tool_keys(page) -> list[str]:
    return page.locator("a[data-tool-key]").evaluate_all("links => links.map(link => link.dataset.toolKey)")


@pytest.fixture(scope="module")
def before_grant(browser, site):
    """What alice's portal showed before the admin acted."""
    page = sign_in(browser, site, "alice")
    keys = portal_tool_keys(page)
    screenshot(page, "01-alice-portal-before")
    page.context.close()
    return keys


@pytest.fixture(scope="module")
def admin_result(browser, site, before_grant):
    """Run the admin flow once, as a person would; return the message the admin saw."""
    context = browser.new_context()
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(f"{site.url}/admin/login/?next=/admin/tools/tool/")
    page.fill("#id_username", DEMO_ADMIN_USERNAME)
    page.fill("#id_password", DEMO_ADMIN_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{site.url}/admin/tools/tool/")

    page.locator("#result_list tr", has_text=TOOL_KEY).locator("input.action-select").check()
    page.select_option("select[name=action]", ACTION)
    screenshot(page, "02-admin-tool-selected")
    page.click("button[name=index]")
    page.wait_for_selector("#grant-to-all-except-form")

    # The "Leave out" picker is admin's autocomplete (select2): type, wait for the match, pick it.
    page.click("#grant-to-all-except-form .select2-selection")
    page.keyboard.type("user_a")
    page.locator(".select2-results__option", has_text="user_a").first.click()
    assert page.locator("select[name=excluded_users] option:checked").all_inner_texts() == ["user_a"]
    screenshot(page, "03-admin-leave-out-user_a")

    page.click("input[name=apply]")
    page.wait_for_url(f"{site.url}/admin/tools/tool/")
    message = page.locator("ul.messagelist li.success").inner_text()
    screenshot(page, "04-admin-granted")
    context.close()
    return message


def test_browser__before_the_grant_alice_lacks_the_tool(before_grant):
    assert TOOL_KEY not in before_grant


def test_browser__admin_sees_who_was_left_out(admin_result):
    assert "left out: user_a" in admin_result


def test_browser__excluded_user_portal_lacks_the_tool(browser, site, admin_result):
    page = sign_in(browser, site, "user_a")

    keys = portal_tool_keys(page)
    screenshot(page, "05-user_a-portal")

    assert TOOL_KEY not in keys
    assert page.get_by_text(TOOL_NAME).count() == 0


def test_browser__excluded_user_gets_403_on_the_tool_url(browser, site, admin_result):
    page = sign_in(browser, site, "user_a")

    response = page.goto(f"{site.url}/tools/{TOOL_KEY}/")
    screenshot(page, "06-user_a-tool-403")

    assert response.status == 403
    assert page.locator("h1").inner_text() == "No access"


@pytest.mark.parametrize("username", ["alice", "bob"])
def test_browser__other_users_portal_shows_the_tool_and_opens_it(browser, site, admin_result, username):
    page = sign_in(browser, site, username)
    keys = portal_tool_keys(page)
    screenshot(page, f"07-{username}-portal")

    page.click(f"a[data-tool-key={TOOL_KEY}]")
    page.wait_for_url(f"{site.url}/tools/{TOOL_KEY}/")

    assert TOOL_KEY in keys
    assert page.locator("h1").inner_text() == TOOL_NAME
