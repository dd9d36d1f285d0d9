"""Under the strict Content-Security-Policy the pages still work, and nothing is refused."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.auth import log_in_browser
from tests.factories import AgentFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def people(department):
    AgentFactory(
        user=UserFactory(username="alice", password=PASSWORD),
        display_name="Alice Agent",
        departments=[department],
    )
    UserFactory(username="sam", password=PASSWORD, is_superuser=True)


async def test_pages_run_under_the_csp_without_violations(open_page, people) -> None:
    violations: list[str] = []

    async def watched():
        page = await open_page()
        page.on(
            "console",
            lambda msg: (
                violations.append(f"{page.url}: {msg.text}")
                if "Content Security Policy" in msg.text
                else None
            ),
        )
        return page

    agent = await watched()
    response = await agent.goto("/accounts/login/")
    assert "script-src 'self'" in (await response.all_headers())["content-security-policy"]
    await log_in_browser(agent, username="alice", password=PASSWORD, next_path="/agent/")
    # The state frame arrived: the page's script ran and its socket (connect-src) is open.
    await expect(agent.locator("#presence")).to_have_value("offline")
    await agent.locator("#presence").select_option("online")

    visitor = await watched()
    await visitor.goto("/chat/")
    await visitor.get_by_label("Your name").fill("Vera Visitor")
    await visitor.get_by_label("Department").select_option("support")
    await visitor.get_by_label("How can we help?").fill("Hello")
    await visitor.get_by_role("button", name="Start chat").click()  # enabled once its socket is up
    await expect(visitor.locator("#prechat")).to_be_hidden()

    await agent.goto("/accounts/password/change/")
    await expect(agent.get_by_role("heading", name="Change your password")).to_be_visible()

    admin = await watched()
    await log_in_browser(admin, username="sam", password=PASSWORD, next_path="/admin/")
    for path in ("/admin/compliance/ipallowrule/add/", "/admin/compliance/passwordpolicy/add/"):
        await admin.goto(path)
        await expect(admin.get_by_role("button", name="Save", exact=True)).to_be_visible()

    assert violations == []


async def test_the_demo_shop_page_loads_the_widget_from_the_other_origin_under_the_csp(
    open_page, daphne_server, department
) -> None:
    """`make run`'s demo host page (localhost) embeds the widget served from 127.0.0.1: its CSP
    must allow exactly that origin for the script, styles and socket, and nothing else."""
    violations: list[str] = []
    page = await open_page()
    page.on(
        "console",
        lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    response = await page.goto(f"http://localhost:{daphne_server.port}/widget/demo/")
    policy = (await response.all_headers())["content-security-policy"]
    assert f"http://127.0.0.1:{daphne_server.port}" in policy and "'unsafe-inline'" not in policy
    launcher = page.get_by_role("button", name="Chat with us")
    await expect(launcher).to_be_visible()  # widget.js ran and built its panel
    await launcher.click()
    # Its config came back and it shows a form (offline here: no agent is online).
    await expect(page.get_by_label(re.compile("^Your name")).first).to_be_visible()
    assert violations == []
